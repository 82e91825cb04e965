"""One config object: the engine, the CLI and the app read their defaults from it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from spec_core.config import DEFAULTS, SpecConfig
from spec_core.engine.compare import compare


def test_compare_defaults_are_the_configs():
    params = inspect.signature(compare).parameters
    for field in dataclasses.fields(SpecConfig):
        assert params[field.name].default == getattr(DEFAULTS, field.name), field.name


def test_cli_defaults_are_the_configs():
    from spec_core.cli.entry import build_parser

    args = build_parser().parse_args(["compare", "a.npy", "b.npy", "--out", "r.json"])
    for field in dataclasses.fields(SpecConfig):
        if hasattr(args, field.name):
            assert getattr(args, field.name) == getattr(DEFAULTS, field.name), field.name


def test_app_defaults_are_the_configs():
    pytest.importorskip("streamlit")
    from spec_app import state

    for key, value in state.settings_defaults().items():
        if key == "top_k":
            assert value == 24  # the app's own: a grid of 6 x 4 members
        elif hasattr(DEFAULTS, key):
            assert value == getattr(DEFAULTS, key), key


def test_config_is_hashable_validated_and_strict():
    config = SpecConfig(kernel="cosine", n_modes=3)
    assert hash(config) == hash(SpecConfig(kernel="cosine", n_modes=3))
    assert config.validated() is config
    assert config.kwargs()["kernel"] == "cosine"
    with pytest.raises(ValueError, match="n_modes"):
        SpecConfig(n_modes=0).validated()
    with pytest.raises(ValueError, match="method"):
        SpecConfig(kernel="cosine", method="rff").validated()
    with pytest.raises(ValueError, match="device"):
        SpecConfig(device="tpu").validated()
    with pytest.raises(ValueError, match="unknown SPEC parameter"):
        DEFAULTS.replace(n_mode=3)


def test_kernels_are_objects_with_one_name_list():
    from spec_core import checks as v
    from spec_core.engine.kernels import KERNELS, get_kernel

    assert tuple(KERNELS) == tuple(v.KERNELS)
    assert get_kernel("gaussian").approximations == ("rff", "nystrom")
    assert get_kernel("cosine").exact_map is not None and get_kernel("cosine").metric == "cosine"
    with pytest.raises(ValueError, match="gaussian, cosine"):
        get_kernel("laplacian")


def test_every_parameter_is_in_the_table_with_help():
    from spec_core.config import params

    table = params()
    assert [p.name for p in table] == [f.name for f in dataclasses.fields(SpecConfig)]
    for p in table:
        assert p.help and p.default == getattr(DEFAULTS, p.name), p.name
        p.validate(p.default)  # every default is allowed


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("kernel", "laplacian", "kernel='laplacian' is not supported; choose one of gaussian"),
        ("sigma_a", -1.0, "sigma_a must be a positive number"),
        ("sigma_b", float("nan"), "sigma_b must be a positive number"),
        ("sigma_rule", "mean", "sigma_rule='mean' is not supported"),
        ("sigma_scale", 1e7, "sigma_scale must be a finite number from 1e-06 to 1e\\+06"),
        ("centre", "yes", "centre must be True or False"),
        ("eta", -0.5, "eta must be a finite number from 0 to"),
        ("method", "pca", "method='pca' is not supported"),
        ("n_features", 0, "n_features must be a positive integer"),
        ("n_modes", 10**6, "n_modes=1000000 is more than this tool allows"),
        ("top_k", 2.5, "top_k must be a positive integer"),
        ("n_eigenvalues", 10**4, "n_eigenvalues=10000 is more than this tool allows"),
        ("seed", -1, "seed must be an integer from 0 to 2\\*\\*63 - 1"),
        ("device", "tpu", "device='tpu' is not supported"),
        ("dtype", "float16", "dtype='float16' is not supported"),
        ("context", 1, "context must be True or False"),
        ("stability", None, "stability must be True or False"),
        ("members", "all", "members='all' is not supported"),
        ("knn_k", 0, "knn_k must be a positive integer"),
    ],
)
def test_each_parameter_refuses_a_bad_value_by_name(name, bad, message):
    with pytest.raises(ValueError, match=message):
        DEFAULTS.replace(**{name: bad}).validated()


def test_where_parameters_show():
    from spec_core.config import APP, CLI, params

    assert {p.name for p in params(where=CLI)} == {f.name for f in dataclasses.fields(SpecConfig)}
    assert [p.name for p in params(where=APP)] == [
        "kernel", "sigma_a", "sigma_b", "sigma_scale", "eta", "method", "n_features", "n_modes",
        "top_k", "seed", "device",
    ]  # fmt: skip
    table = {p.name: p for p in params()}
    cosine = {"kernel": "cosine", "method": "auto", "sigma_a": None, "sigma_b": None}
    assert table["method"].options(cosine) == ("auto", "exact")
    assert table["sigma_a"].unused_reason(cosine) == "The cosine kernel has no bandwidth."
    by_hand = {"kernel": "gaussian", "method": "exact", "sigma_a": 1.0, "sigma_b": 2.0}
    assert "set by hand" in table["sigma_scale"].unused_reason(by_hand)
    assert "exact method" in table["n_features"].unused_reason(by_hand)
    assert table["n_features"].unused_reason({**by_hand, "method": "rff"}) is None
    assert table["top_k"].default_in(APP) == 24 and table["top_k"].default_in(CLI) == 20
