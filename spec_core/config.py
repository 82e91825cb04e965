"""The parameter table: every SPEC parameter once, with its default, its allowed values or
bounds, its help text and where it shows.

`SpecConfig` is the table: each field is declared with `param(default, ...)`, which records a
`Param` (the field's kind, choices or bounds, help, sidebar label, and where it shows: "cli",
the flags of `python -m spec_core compare`; "app", the sidebar's widgets; "link", the settings a
shared link carries and clamps). Everything else is generated from it: `compare`'s keyword
defaults (`DEFAULTS`), the validation (`check_parameters`), the CLI's flags
(`spec_core.cli.common.add_config_flags`), the sidebar's widgets and the link's bounds
(`spec_app`). Adding a parameter touches this table and the code that uses it, nothing else.

A SpecConfig is frozen and hashable, so it can key a cache:

    >>> from spec_core.config import SpecConfig
    >>> config = SpecConfig(kernel="cosine", n_modes=3)
    >>> compare(emb_a, emb_b, **config.validated().kwargs())
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spec_core import checks as v
from spec_core.limits import CAPS

#: The feature maps that approximate a kernel (rff, nystrom), per kernel: the cosine kernel has an
#: exact finite map (its normalised rows), so it needs none (spec_core.engine.kernels reads this).
APPROXIMATIONS = ("rff", "nystrom")
APPROXIMATIONS_OF = {"gaussian": APPROXIMATIONS, "cosine": ()}

#: Where a parameter shows: a flag of the `compare` command, a widget of the app's sidebar, a
#: setting a shared link carries.
CLI, APP, LINK = "cli", "app", "link"
EVERYWHERE = frozenset({CLI, APP, LINK})
CLI_ONLY = frozenset({CLI})

#: A reason a parameter does not apply to the other settings: (test, what the app says).
Unused = tuple[Callable[[Mapping[str, Any]], bool], str]


@dataclass(frozen=True)
class Param:
    """One parameter of a comparison (recorded by `param`; `name` and `default` are the field's).

    kind: str (one of `choices`), float, int or bool; `optional`: None is a value too (a
    bandwidth left to the data-driven rule). `low`/`high`: the engine's bounds (inclusive;
    `positive`: above 0); `form`: the narrower (low, high) of the sidebar and of links, when
    they differ. `unused`: when the parameter does not apply, and the reason the app shows;
    `choices_when`: the choices that apply to the other settings (methods of the cosine
    kernel). `label`, `group`, `step`, `number_format`, `widget`: how the sidebar draws it
    (parameters of one group share a row). `app_default`: the app's default, when it differs.
    """

    name: str = ""
    default: Any = None
    kind: type = float
    help: str = ""
    shows: frozenset[str] = EVERYWHERE
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    positive: bool = False
    optional: bool = False
    form: tuple[float, float] | None = None
    check: Callable[[str, Any], Any] | None = None
    unused: tuple[Unused, ...] = ()
    choices_when: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    label: str = ""
    group: str = ""
    step: float | None = None
    number_format: str | None = None
    widget: str = "select"
    app_default: Any = None  # None: the same as `default`

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def bounds(self) -> tuple[float, float]:
        """The (low, high) of the sidebar and of links."""
        if self.form is not None:
            return self.form
        low = self.low if self.low is not None else -math.inf
        return (low, self.high if self.high is not None else math.inf)

    def default_in(self, where: str) -> Any:
        return self.app_default if where == APP and self.app_default is not None else self.default

    def options(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """The choices that apply to these settings."""
        return self.choices_when(settings) if self.choices_when else self.choices

    def unused_reason(self, settings: Mapping[str, Any]) -> str | None:
        """Why this parameter does not apply to these settings (None: it does)."""
        return next((why for test, why in self.unused if test(settings)), None)

    def validate(self, value: Any) -> None:
        """A ValueError naming the parameter when `value` is not allowed."""
        if value is None and self.optional:
            return
        if self.check is not None:
            self.check(self.name, value)
        elif self.choices:
            v.check_choice(self.name, value, self.choices)
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be True or False, got {value!r}")
        elif self.kind is int:
            v.check_positive_int(self.name, value, maximum=self.high)
        else:
            self._validate_number(value)

    def _validate_number(self, value: Any) -> None:
        number = v.real_number(self.name, value)
        if self.positive and not (math.isfinite(number) and number > 0):
            raise ValueError(f"{self.name} must be a positive number, got {value!r}")
        low = self.low if self.low is not None else -math.inf
        high = self.high if self.high is not None else math.inf
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(
                f"{self.name} must be a finite number from {low:g} to {high:g}, got {value!r}"
            )


def param(default: Any, **spec: Any) -> Any:
    """A SpecConfig field: its default and its `Param`."""
    return dataclasses.field(default=default, metadata={"param": Param(default=default, **spec)})


def _cosine(settings: Mapping[str, Any]) -> bool:
    return settings.get("kernel") == "cosine"


def _both_bandwidths_set(settings: Mapping[str, Any]) -> bool:
    return settings.get("sigma_a") is not None and settings.get("sigma_b") is not None


def _exact(settings: Mapping[str, Any]) -> bool:
    return settings.get("method") == "exact"


def _methods_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    approximations = APPROXIMATIONS_OF.get(settings.get("kernel"), APPROXIMATIONS)
    return tuple(m for m in v.METHODS if m not in APPROXIMATIONS or m in approximations)


#: How modes are made from the spectrum (spec_core.engine.groups).
GROUPINGS = ("auto", "span", "eigenvectors")

NO_BANDWIDTH: Unused = (_cosine, "The cosine kernel has no bandwidth.")
SIGMA_HELP = (
    "Gaussian bandwidth of {side}, in the units of its embedding. Auto: the bandwidth scale x "
    "0.3 x the median pairwise distance of a seeded sample of rows (the value used is shown "
    "with the result)."
)


@dataclass(frozen=True)
class SpecConfig:
    """The parameters of one comparison (see spec_core.compare for what each means)."""

    kernel: str = param(
        "gaussian",
        kind=str,
        choices=v.KERNELS,
        label="Kernel",
        widget="radio",
        help="gaussian: exp(-|x - y|^2 / 2 sigma^2) per embedding; cosine: the cosine "
        "similarity (no bandwidth).",
    )
    sigma_a: float | None = param(
        None,
        positive=True,
        optional=True,
        form=(1e-12, 1e12),
        unused=(NO_BANDWIDTH,),
        label="sigma A",
        number_format="%.4g",
        help=SIGMA_HELP.format(side="A"),
    )
    sigma_b: float | None = param(
        None,
        positive=True,
        optional=True,
        form=(1e-12, 1e12),
        unused=(NO_BANDWIDTH,),
        label="sigma B",
        number_format="%.4g",
        help=SIGMA_HELP.format(side="B"),
    )
    sigma_rule: str = param(  # chosen with benchmarks/bench_legibility.py
        "median",
        kind=str,
        choices=v.SIGMA_RULES,
        shows=CLI_ONLY,
        help="data-driven bandwidth when --sigma-a/--sigma-b are not given",
    )
    sigma_scale: float = param(
        1.0,
        positive=True,
        low=1e-6,
        high=1e6,
        form=(0.05, 20.0),
        unused=(NO_BANDWIDTH, (_both_bandwidths_set, "Not used: both bandwidths are set by hand.")),
        label="Bandwidth scale",
        step=0.1,
        number_format="%.3g",
        help="Multiplies the auto bandwidths: smaller finds smaller, tighter groups; larger, "
        "broader ones (see the `scales` command and the Scales page).",
    )
    centre: bool = param(
        True,
        kind=bool,
        shows=CLI_ONLY,
        help="compare the centred kernels H K H (--no-centre: the paper's definition)",
    )
    eta: float = param(
        1.0,
        low=0.0,
        high=CAPS.max_eta,
        label="eta (weight of B)",
        help="SPEC compares K_A with eta x K_B; 1 weighs both embeddings alike.",
    )
    method: str = param(
        "auto",
        kind=str,
        choices=v.METHODS,
        choices_when=_methods_of,
        label="Method",
        help="auto: exact up to 6,000 rows, Nystroem beyond (the cosine kernel is always exact); "
        "rff / nystrom: feature approximations of the Gaussian kernel, linear in the rows.",
    )
    n_features: int = param(
        2000,
        kind=int,
        high=CAPS.max_n_features,
        form=(2, CAPS.max_n_features),
        unused=(
            (lambda s: _cosine(s) or _exact(s), "Not used: the exact method needs no features."),
        ),
        label="Feature dimension per embedding",
        step=100,
        help="Random Fourier / Nystroem features per embedding (rff / nystrom, and auto beyond "
        "6,000 rows): more is closer to exact and slower.",
    )
    n_modes: int = param(
        5,
        kind=int,
        high=CAPS.max_n_modes,
        form=(1, CAPS.max_n_modes),
        label="Modes per side",
        group="modes",
        help="Clusters listed for each direction.",
    )
    top_k: int = param(
        20,
        kind=int,
        high=CAPS.max_top_k,
        form=(1, CAPS.max_top_k),
        app_default=24,  # the app shows a grid of 6 x 4 members
        label="Members kept",
        group="modes",
        help="Highest-scoring rows kept per mode (the Clusters page lists every row by score).",
    )
    n_eigenvalues: int = param(
        20,
        kind=int,
        high=CAPS.max_n_eigenvalues,
        shows=CLI_ONLY,
        help="eigenvalues computed at each end of the spectrum",
    )
    seed: int = param(
        0,
        kind=int,
        check=lambda name, value: v.check_seed(value, name),
        low=0,
        high=2**63 - 1,
        form=(0, 2**31 - 1),
        label="Seed",
        group="run",
        help="Every random draw (bandwidth sample, features, solver start) follows it.",
    )
    device: str = param(
        "auto",
        kind=str,
        choices=v.DEVICES,
        label="Device",
        group="run",
        help="auto: a CUDA GPU when there is one.",
    )
    dtype: str = param(
        "float32", kind=str, choices=v.DTYPES, shows=CLI_ONLY, help="the compute precision"
    )
    context: bool = param(
        True,
        kind=bool,
        shows=CLI_ONLY,
        help="compute the context metrics (linear CKA, kNN overlap)",
    )
    stability: bool = param(
        True,
        kind=bool,
        shows=CLI_ONLY,
        help="measure each mode's stability on resamples of the rows",
    )
    members: str = param(  # chosen with benchmarks/bench_legibility.py
        "cut",
        kind=str,
        choices=v.MEMBER_RULES,
        shows=CLI_ONLY,
        help="cut: a mode's top round(size) rows (at least 5, at most --top-k); top_k: always "
        "--top-k rows",
    )
    groups: str = param(  # issue 16, chosen with benchmarks/bench_legibility.py
        "auto",
        kind=str,
        choices=GROUPINGS,
        shows=CLI_ONLY,
        help="span: each mode a group of the span of its direction's top eigenvectors, "
        "rotated to their most localised basis; eigenvectors: one eigenvector each (the "
        "paper's modes); auto: span for centred kernels with data-driven bandwidths, "
        "eigenvectors with --no-centre or bandwidths given by hand",
    )
    knn_k: int = param(
        10,
        kind=int,
        high=CAPS.max_knn_k,
        shows=CLI_ONLY,
        help="neighbours per row for the kNN overlap",
    )

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments for compare()."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SpecConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown SPEC parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def validated(self) -> SpecConfig:
        """Self, after checking every field (a ValueError names the first bad one)."""
        check_parameters(**self.kwargs())
        return self


def params(config: type | None = None, where: str | None = None) -> tuple[Param, ...]:
    """The table: every parameter of `config` (default SpecConfig) that shows `where` (when
    given), in order."""
    table = tuple(
        dataclasses.replace(f.metadata["param"], name=f.name)
        for f in dataclasses.fields(config or SpecConfig)
        if "param" in f.metadata
    )
    return table if where is None else tuple(p for p in table if where in p.shows)


#: The defaults, read by the engine, the CLI and the app.
DEFAULTS = SpecConfig()


def check_parameters(
    *, config: type | None = None, block_rows: int | None = None, **values: Any
) -> None:
    """Every given parameter against its allowed values and caps (spec_core.limits.CAPS), then
    the ones that depend on each other; a ValueError names the first bad one. `block_rows`:
    the engine's rows per block (not a parameter of the table: a memory knob)."""
    if block_rows is not None:
        v.check_positive_int("block_rows", block_rows)
    table = {p.name: p for p in params(config)}
    unknown = set(values) - set(table)
    if unknown:
        raise ValueError(f"unknown SPEC parameter(s): {', '.join(sorted(unknown))}")
    for name, value in values.items():
        table[name].validate(value)
    method, kernel = values.get("method"), values.get("kernel")
    if method in APPROXIMATIONS and kernel is not None and method not in APPROXIMATIONS_OF[kernel]:
        raise ValueError(
            f"method={method!r} approximates the Gaussian kernel; the {kernel} kernel has an "
            "exact feature map, so use method='exact' or 'auto'"
        )
