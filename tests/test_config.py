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

    for key, value in state.SETTINGS.items():
        if key == "top_k":
            assert value == state.APP_TOP_K
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
