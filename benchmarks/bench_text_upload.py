"""Peak memory and time of loading a large text upload: the CLI path (`load_dataset(path)`) and
the app's Data page path (`load_texts((name, bytes))`, then the upload manifest it writes).

Every file is made in a temporary folder (nothing is written into the repository); each load
runs in its own process, so its peak resident memory (ru_maxrss) is its own. "peak" is the peak
minus the process's memory before the load (Python, NumPy and pandas imported, file bytes read).

    python benchmarks/bench_text_upload.py [--only txt-2M,csv-5M]
    python benchmarks/bench_text_upload.py --only txt-2M-emoji,txt-20M-ascii,txt-20M-emoji
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> (file name, header, one line (formatted with its number), number of lines)
CASES = {
    "txt-2M": ("short.txt", "", "t{}", 2_000_000),  # ~17 MB of short lines
    "txt-10M": ("tiny.txt", "", "a", 10_000_000),  # 20 MB of one-letter lines
    "csv-5M": ("rows.csv", "text,label\n", "a,b", 5_000_000),  # ~20 MB
    "jsonl-2M": ("rows.jsonl", "", '{{"text": "t{}"}}', 2_000_000),  # ~36 MB
    # every other line is invalid JSON: 200,000 bad lines before the cap is reached
    "jsonl-2M-bad": ("bad.jsonl", "", '{{"text": "t{}"}}\n{{oops', 1_000_000),
    # one emoji on line 1: decoding the whole file would cost 4 bytes a character
    "txt-2M-ascii": ("ascii.txt", "", "line number {}", 2_000_000),  # ~37 MB
    "txt-2M-emoji": ("emoji.txt", "\U0001f642 first\n", "line number {}", 2_000_000),
    "txt-20M-ascii": ("ascii.txt", "", "line number {}", 20_000_000),  # ~390 MB
    "txt-20M-emoji": ("emoji.txt", "\U0001f642 first\n", "line number {}", 20_000_000),
}
#: The cases run when --only is not given (the 20M ones take a minute each: ask for them).
DEFAULT_CASES = [case for case in CASES if "20M" not in case]


def write_case(folder: Path, case: str) -> Path:
    name, header, line, count = CASES[case]
    path = folder / name
    step = 100_000
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(header)
        for start in range(0, count, step):
            handle.write("".join(line.format(i) + "\n" for i in range(start, start + step)))
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(path: Path, route: str, root: Path) -> None:
    """One load in this process; prints a JSON line of what it cost."""
    import numpy  # noqa: F401  (imported before the baseline, as in the app and the CLI)
    import pandas  # noqa: F401

    from spec_core.data.datasets import DatasetError, load_dataset
    from spec_core.data.text_sets import load_texts

    data = path.read_bytes() if route == "app" else None
    before = _peak_mib()
    start = time.perf_counter()
    try:
        dataset = load_dataset(path) if route == "cli" else load_texts((path.name, data))
    except DatasetError as err:
        seconds = time.perf_counter() - start
        print(json.dumps({"error": str(err)[:200], "peak_mib": _peak_mib() - before, "s": seconds}))
        return
    seconds = time.perf_counter() - start
    manifest = None
    if route == "app":
        from spec_core.data.uploads import save_dataset

        save_dataset(dataset, root=root)
        manifest = sum(p.stat().st_size for p in root.rglob("*.json")) / 2**20
    print(
        json.dumps(
            {
                "rows": len(dataset),
                "skipped": len(dataset.skipped),
                "peak_mib": _peak_mib() - before,
                "seconds": seconds,
                "manifest_mib": manifest,
                "last": [dataset.skipped[-1].item, dataset.skipped[-1].reason]
                if dataset.skipped
                else None,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--only", default=",".join(DEFAULT_CASES), help=f"comma-separated, of {', '.join(CASES)}"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("PATH", "ROUTE", "ROOT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], Path(args.child[2]))
        return
    repo = Path(__file__).resolve().parent.parent
    print(
        f"{'case':<14}{'MB':>6} {'route':<5}{'rows':>10}{'skipped':>11}{'peak MiB':>10}"
        f"{'s':>7}{'manifest MiB':>14}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for case in args.only.split(","):
            path = write_case(folder, case)
            for route in ("cli", "app"):
                root = folder / f"uploads-{case}-{route}"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), route, str(root)],
                    capture_output=True,
                    text=True,
                    cwd=repo,
                    check=True,
                )
                got = json.loads(done.stdout.strip().splitlines()[-1])
                if "error" in got:
                    print(f"{case:<14} {route}: {got}")
                    continue
                manifest = got["manifest_mib"]
                print(
                    f"{case:<14}{path.stat().st_size / 1e6:>6.1f} {route:<5}{got['rows']:>10,}"
                    f"{got['skipped']:>11,}{got['peak_mib']:>10.0f}{got['seconds']:>7.1f}"
                    f"{'' if manifest is None else f'{manifest:.2f}':>14}"
                )
                if route == "app" and got["last"]:
                    print(f"{'':<14} last skipped: {got['last'][0]}: {got['last'][1]}")
            path.unlink()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
