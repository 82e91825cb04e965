"""The server-side model-name policy: what a web user (or a link) may make the server load."""

from __future__ import annotations

import os
import pathlib

import pytest

from spec_app.policy import ALLOW_LOCAL_ENV, ALLOW_ST_ENV, ModelRefused, check_model
from spec_core.models.registry import BUILTIN


@pytest.fixture(autouse=True)
def default_policy(monkeypatch):
    monkeypatch.delenv(ALLOW_LOCAL_ENV, raising=False)
    monkeypatch.delenv(ALLOW_ST_ENV, raising=False)


@pytest.mark.parametrize("name", [info.name for info in BUILTIN] + ["precomputed:" + "a" * 40])
def test_registry_names_are_allowed(name):
    assert check_model(name) == name


def test_open_clip_pairs_that_open_clip_knows():
    assert check_model("open_clip:RN50/openai") == "open_clip:RN50/openai"
    with pytest.raises(ModelRefused, match="known tags for RN50"):
        check_model("open_clip:RN50/nosuch")
    with pytest.raises(ModelRefused, match="expected open_clip:ARCH/TAG"):
        check_model("open_clip:../../x/y")


@pytest.mark.parametrize(
    "existing, missing",
    [
        ("open_clip:ViT-B-32@/etc/passwd", "open_clip:ViT-B-32@/no/such/file"),
        ("st:/etc", "st:/no/such/folder"),
        ("st:~", "st:~nobody-here/x"),
        ("st:./", "st:./nope"),
    ],
)
def test_local_paths_are_refused_without_probing_them(monkeypatch, existing, missing):
    """The answer is the same whether the path exists, and the file system is not asked."""
    messages = []
    for name in (existing, missing):
        with pytest.raises(ModelRefused) as info:
            check_model(name)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert ALLOW_LOCAL_ENV in messages[0] and "/etc" not in messages[0]

    def probe(*args, **kwargs):
        raise AssertionError("the policy touched the file system")

    for attr in ("exists", "lexists", "isdir", "isfile"):
        monkeypatch.setattr(os.path, attr, probe)
    for attr in ("exists", "is_dir", "is_file", "stat"):
        monkeypatch.setattr(pathlib.Path, attr, probe)
    for name in (existing, missing):
        with pytest.raises(ModelRefused):
            check_model(name)


def test_local_paths_when_the_operator_enables_them(monkeypatch):
    monkeypatch.setenv(ALLOW_LOCAL_ENV, "1")
    assert check_model("open_clip:ViT-B-32@/srv/weights.bin")
    assert check_model("st:/srv/models/mpnet")


def test_hub_models_only_when_enabled(monkeypatch):
    with pytest.raises(ModelRefused, match=ALLOW_ST_ENV):
        check_model("st:sentence-transformers/all-mpnet-base-v2")
    monkeypatch.setenv(ALLOW_ST_ENV, "sentence-transformers/all-mpnet-base-v2, org/other")
    assert check_model("st:sentence-transformers/all-mpnet-base-v2")
    assert check_model("st:org/other")
    with pytest.raises(ModelRefused):
        check_model("st:evil/model")
    monkeypatch.setenv(ALLOW_ST_ENV, "1")
    assert check_model("st:evil/model")
    with pytest.raises(ModelRefused):
        check_model("st:a/b/c")  # not a Hub id


def test_a_relative_path_is_not_a_hub_id(monkeypatch, tmp_path):
    """sentence-transformers loads an existing relative path before the Hub."""
    monkeypatch.setenv(ALLOW_ST_ENV, "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    with pytest.raises(ModelRefused, match="cannot be loaded"):
        check_model("st:org/model")


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "1 to 200 characters"),
        ("x" * 201, "1 to 200 characters"),
        ("minilm-l6\n", "control characters"),
        ("pixels-16\x00", "control characters"),
        ("precomputed:A", "unknown model"),
        ("nope", "unknown model"),
        ("https://evil.example/model", "unknown model"),
    ],
)
def test_malformed_names(name, message):
    with pytest.raises(ModelRefused, match=message):
        check_model(name)
