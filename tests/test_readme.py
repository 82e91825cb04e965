"""The README's examples keep working: its ```python blocks run on small seeded arrays, each
command of its command-line block runs with the arguments it requires (tiny files, an offline
model), and every flag the block lists is one the command knows. A documented call that breaks
fails here rather than in a reader's hands."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCED = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Commands of the block that cannot run here, and why
NOT_RUNNABLE = {"align-model": "it fine-tunes an open_clip model whose weights need a network"}


def readme_blocks(language: str) -> list[str]:
    """The bodies of the README's fenced blocks in this language ("" for a plain block)."""
    return [body for lang, body in FENCED.findall(README.read_text()) if lang == language]


def usage_commands() -> list[str]:
    """The commands of the README's command-line block, one string each (an indented line
    continues the command above it)."""
    blocks = [body for body in readme_blocks("") if body.startswith("python -m spec_core ")]
    assert len(blocks) == 1, "README.md should have one block of `python -m spec_core` commands"
    commands: list[str] = []
    for line in blocks[0].splitlines():
        if line[:1].isspace():
            commands[-1] += " " + line.strip()
        elif line.strip():
            commands.append(line.strip())
    return commands


PYTHON_BLOCKS = readme_blocks("python")
COMMANDS = {shlex.split(command)[3]: command for command in usage_commands()}


def readme_pair() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`emb_a`, `emb_b`, `labels` for the examples: 90 seeded rows in three groups, tight in A
    (6-d); in B (5-d) the first two groups are merged, so A has a group B lacks."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), 30)
    emb_a = rng.normal(scale=4.0, size=(3, 6))[groups] + rng.normal(size=(90, 6))
    merged = np.array([0, 0, 1])[groups]
    emb_b = rng.normal(scale=4.0, size=(2, 5))[merged] + rng.normal(size=(90, 5))
    return emb_a, emb_b, [f"group {g}" for g in groups]


def run_spec_core(argv: list[str], monkeypatch) -> int:
    """`python -m spec_core ARGV` in this process (the module's own entry); its exit code."""
    monkeypatch.setattr(sys, "argv", ["spec_core", *argv])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("spec_core", run_name="__main__", alter_sys=True)
    return done.value.code


def required_arguments(command: str, files: dict[str, str]) -> list[str]:
    """A usage line without its optional [...] parts, its placeholders replaced by `files`:
    the argv after `python -m spec_core`."""
    while (shorter := re.sub(r"\[[^\[\]]*\]", "", command)) != command:
        command = shorter
    argv = [files.get(word, word) for word in shlex.split(command)[3:]]
    unknown = [word for word in argv if re.fullmatch(r"[A-Z][A-Z_]*(\.\w+)?", word)]
    assert not unknown, f"placeholders this test cannot fill: {unknown}"
    return argv


@pytest.fixture
def readme_files(tmp_path, monkeypatch) -> dict[str, str]:
    """The README's placeholders as tiny files in tmp_path (and a private cache)."""
    import pandas as pd

    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path / "cache"))
    emb_a, emb_b, _ = readme_pair()
    np.save(tmp_path / "A.npy", emb_a)
    np.save(tmp_path / "B.npy", emb_b)
    columns = [f"f{j}" for j in range(emb_b.shape[1])]
    pd.DataFrame(emb_b, columns=columns).to_parquet(tmp_path / "B.parquet")
    texts = [f"a recipe for apple pie {i}" for i in range(6)]
    (tmp_path / "texts.txt").write_text("\n".join(texts + [f"a zebra {i}" for i in range(6)]))
    names = ["A.npy", "B.npy", "B.parquet", "result.json", "many.json", "ALIGNED.npy"]
    names.append("REPORT.json")
    return {
        **{name: str(tmp_path / name) for name in names},
        "NAME": "char-ngrams",  # an offline model: no weights, no network
        "PATH": str(tmp_path / "texts.txt"),
        "FILE.npy": str(tmp_path / "FILE.npy"),
    }


def test_readme_has_its_examples():
    assert len(PYTHON_BLOCKS) >= 2  # compare and align
    assert {"compare", "compare-many", "scales", "align", "models", "embed", "cache"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.splitlines()[0])
def test_python_example_runs(block):
    emb_a, emb_b, labels = readme_pair()
    namespace = {"emb_a": emb_a, "emb_b": emb_b, "labels": labels}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["result"] is not None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_flag_in_the_usage_is_known(name, monkeypatch, capsys):
    assert run_spec_core([name, "--help"], monkeypatch) == 0
    usage = capsys.readouterr().out
    flags = set(re.findall(r"--[a-z][a-z-]*", COMMANDS[name]))
    assert flags, COMMANDS[name]
    assert flags <= set(re.findall(r"--[a-z][a-z-]*", usage)), flags


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - set(NOT_RUNNABLE)))
def test_command_runs_with_its_required_arguments(name, readme_files, monkeypatch):
    argv = required_arguments(COMMANDS[name], readme_files)
    assert run_spec_core(argv, monkeypatch) == 0
    files = {word: Path(path) for word, path in readme_files.items()}
    if name == "compare":  # the keys the README lists
        result = json.loads(files["result.json"].read_text())
        assert {"eigenvalues", "spec_diff", "modes", "params", "timings", "noise_floor"} <= set(
            result
        )
    elif name == "compare-many":  # the keys the README lists, a model per file
        many = json.loads(files["many.json"].read_text())
        assert many["names"] == ["A", "B.npy", "B.parquet"]
        keys = {"names", "spec_diff", "linear_cka", "knn_overlap", "model_map", "closest"}
        assert keys | {"farthest", "models", "pairs", "params", "timings", "inputs"} <= set(many)
        assert many["spec_diff"][1][2] < 1e-6  # B.npy and B.parquet: the same matrix
    elif name == "align":  # the aligned B, its adapter beside it, and the report
        assert np.load(files["ALIGNED.npy"]).shape == np.load(files["B.npy"]).shape
        assert files["ALIGNED.npy"].with_suffix(".adapter.safetensors").exists()
        report = json.loads(files["REPORT.json"].read_text())
        assert set(report["spec_diff"]) == {"before", "after"} and "val_rows" in report
    elif name == "embed":  # the matrix and its row ids
        assert np.load(files["FILE.npy"]).shape[0] == 12
        assert files["FILE.npy"].with_suffix(".ids.json").exists()
