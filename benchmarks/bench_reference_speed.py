"""Our comparison against the authors' code, on the same data in one run: the headline case
(n = 4,000, d = 512 / 768, Gaussian, random Fourier features 2 x 2,000).

    OMP_NUM_THREADS=1 python benchmarks/bench_reference_speed.py --their-code PATH [--n 4000]

PATH is the folder of the authors' SPEC code (the `spec/` folder of
github.com/mjalali/embedding-comparison, holding `spec_core.py` and `utils.py`); it is not part
of this project (not vendored, not installed) and is loaded from PATH only. Without it, only our
side runs and the ratio is skipped with a message.

Their side: `utils.gaussian_covariance(x, rff_dim, sigma, return_features=True)` for each
embedding (their feature map, and their batched covariance), then
`SPEC(sigma=...).compute_by_covariance_matrix(x, y, phi_x=..., phi_y=..., method="cholesky")`,
at our data-driven bandwidths and with rff_dim = 1,000 frequencies (2,000 features, ours too).
Our side: `spec_core.compare` with every trust signal on (the defaults: stability on 10
resamples, the context metrics, the noise floor) and bare (stability and context off). Printed:
each time, best of --repeat, and the ratios (their time / ours).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's spec_core
sys.path.insert(1, str(HERE))

#: The authors' files the script needs in --their-code.
THEIR_FILES = ("spec_core.py", "utils.py")


def load_theirs(folder: Path):
    """(their SPEC class, their gaussian_covariance) loaded from the files in `folder`, under
    module names of their own (their `spec_core` must not shadow ours). Raises ValueError
    naming what is missing."""
    if not folder.is_dir():
        raise ValueError(f"--their-code {folder}: not a folder")
    missing = [name for name in THEIR_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"--their-code {folder}: missing {', '.join(missing)} (the spec/ folder of "
            "github.com/mjalali/embedding-comparison holds them)"
        )
    sys.path.insert(0, str(folder))  # their own imports (log, ...) resolve from their folder
    modules = {}
    try:
        for name in THEIR_FILES:
            spec = importlib.util.spec_from_file_location(f"theirs_{name[:-3]}", folder / name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        sys.path.remove(str(folder))
    return modules["spec_core.py"].SPEC, modules["utils.py"].gaussian_covariance


def run_theirs(theirs, a, b, sigma_a: float, sigma_b: float, rff_dim: int):
    """(seconds, None) of their feature route on a and b."""
    import torch

    spec_class, gaussian_covariance = theirs
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # their progress bars
        _, _, phi_x = gaussian_covariance(x, rff_dim, sigma_a, device="cpu", return_features=True)
        _, _, phi_y = gaussian_covariance(y, rff_dim, sigma_b, device="cpu", return_features=True)
        spec_class(sigma=sigma_a).compute_by_covariance_matrix(
            x, y, phi_x=phi_x, phi_y=phi_y, eta=1, method="cholesky"
        )
    return time.perf_counter() - start, None


def run_ours(a, b, n_features: int, **options):
    """(seconds, result) of spec_core.compare on a and b."""
    from spec_core import compare

    start = time.perf_counter()
    result = compare(a, b, method="rff", n_features=n_features, **options)
    return time.perf_counter() - start, result


def best(repeat: int, work):
    """(the fewest seconds of `repeat` runs of work() -> (seconds, output), the last output)."""
    runs = [work() for _ in range(repeat)]
    return min(seconds for seconds, _ in runs), runs[-1][1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--their-code", type=Path, help="folder of the authors' spec_core.py")
    parser.add_argument("--n", type=int, default=4000, help="rows (default 4000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many (default 3)")
    args = parser.parse_args(argv)
    if args.n < 100:
        parser.error(f"--n must be at least 100, got {args.n}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    theirs = None
    if args.their_code is not None:
        try:
            theirs = load_theirs(args.their_code)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    from _data import clustered_pair

    a, b = clustered_pair(args.n)
    rff_dim = 1000
    run_ours(a[:200], b[:200], 2 * rff_dim)  # first-call costs of torch and LAPACK
    every, result = best(args.repeat, lambda: run_ours(a, b, 2 * rff_dim))
    bare, _ = best(args.repeat, lambda: run_ours(a, b, 2 * rff_dim, stability=False, context=False))
    print(f"n = {args.n}, d = 512 / 768, Gaussian, rff 2 x {2 * rff_dim}, best of {args.repeat}")
    print(f"ours, every trust signal   {every:8.2f} s")
    print(f"ours, bare                 {bare:8.2f} s")
    if theirs is None:
        print("theirs: skipped (give --their-code PATH, the folder of the authors' spec_core.py)")
        return 0
    p = result.params
    seconds, _ = best(args.repeat, lambda: run_theirs(theirs, a, b, p.sigma_a, p.sigma_b, rff_dim))
    print(f"theirs                     {seconds:8.2f} s")
    print(f"ratio, every signal        {seconds / every:8.1f}x")
    print(f"ratio, bare                {seconds / bare:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
