"""benchmarks/bench_reference_speed.py: its arguments (the authors' code is not on this machine:
a stand-in with their interface checks the plumbing, not their speed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_reference_speed.py"

STAND_IN_UTILS = """
import torch


def gaussian_covariance(x, rff_dim, sigma, batchsize=256, normalize=True, device="cuda",
                        return_features=False):
    omegas = torch.randn(x.shape[1], rff_dim, dtype=x.dtype) / sigma
    product = x @ omegas
    features = torch.cat([product.cos(), product.sin()], dim=1) / rff_dim**0.5
    cov = features.T @ features / x.shape[0]
    return (cov, omegas, features) if return_features else cov
"""

STAND_IN_SPEC = """
from log import make_logger  # resolved from this folder, as the authors' own import is

import torch


class SPEC:
    def __init__(self, similarity_function=None, sigma=None):
        self.sigma = sigma

    def compute_by_covariance_matrix(self, x, y, phi_x=None, phi_y=None, eta=1, method="cholesky"):
        psi = torch.cat([phi_x, phi_y], dim=1)
        return torch.linalg.eigvalsh(psi.T @ psi / psi.shape[0]), None
"""


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("bench_reference_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_their_code_only_ours_runs(script, capsys):
    assert script.main(["--n", "300", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours, every trust signal" in out and "ours, bare" in out
    assert "theirs: skipped (give --their-code PATH" in out
    assert "ratio" not in out


def test_a_folder_without_their_files_is_refused(script, tmp_path, capsys):
    (tmp_path / "utils.py").write_text("")
    assert script.main(["--their-code", str(tmp_path), "--n", "300"]) == 2
    err = capsys.readouterr().err
    assert f"--their-code {tmp_path}: missing spec_core.py" in err
    assert "utils.py" not in err.split("missing")[1].split("(")[0]


def test_a_path_that_is_not_a_folder_is_refused(script, tmp_path, capsys):
    assert script.main(["--their-code", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "50"], "--n must be at least 100"),
        (["--repeat", "0"], "--repeat must be at least 1"),
    ],
)
def test_bad_numbers_are_refused(script, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_with_code_of_their_interface_both_run_and_the_ratio_prints(script, tmp_path, capsys):
    (tmp_path / "utils.py").write_text(STAND_IN_UTILS)
    (tmp_path / "spec_core.py").write_text(STAND_IN_SPEC)
    (tmp_path / "log.py").write_text("def make_logger(*args):\n    return None\n")
    assert script.main(["--their-code", str(tmp_path), "--n", "300", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("theirs ", "ratio, every signal", "ratio, bare"):
        assert line in out
    ratio = float(out.split("ratio, every signal")[1].split("x")[0])
    assert ratio > 0
