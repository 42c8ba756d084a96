"""One training configuration schema, shared by the CLI, the TUI form and the worker.

Each field of :class:`TrainConfig` carries its default, bounds, choices, help text and help group
in ``dataclasses.field(metadata=...)``, plus what the faces need to show it: a widget hint (a plain
string from :data:`WIDGETS`; the TUI maps it to a control), the objectives it belongs to, and a
cheap check against the files on disk. The CLI builds its ``bvae train`` options from
:func:`schema`, the TUI builds its form from the same, and :meth:`TrainConfig.validate` is the only
place values are checked, so the two faces cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.objective_info import DIP, OBJECTIVE_INFO, OBJECTIVES, TC_ESTIMATORS
from bvae_tui.errors import UserError

ARCHITECTURES = ("auto", "H", "B")
IMAGE_SIZES = (32, 64, 128)  # the sides engine.train.models builds networks for
RECONS = ("auto", "bernoulli", "gaussian")
AMP_MODES = ("auto", "bf16", "off")
TOGGLES = ("auto", "on", "off")

# What a crash loses at most, on the CPU (GPUs reach --checkpoint-every sooner). One checkpoint of
# the H or B model (6-9 MB with Adam's state, fsynced) took 0.14-0.18 s on a loaded 2-core CPU
# (benchmarks/RESULTS.md, "Checkpoint cost"): 0.15% of two minutes.
CHECKPOINT_MINUTES = 2.0

# Iterations between probe metrics (engine/train/probes.py) when --probe-every is not given, on a
# dataset with ground-truth factors. One probe (3,072 images encoded, MI and MIG) cost about 0.2%
# of the training time between two of them on a loaded 2-core CPU (benchmarks/RESULTS.md, "Probe
# cost"); fine enough to see a factor move into a latent over a 100,000-iteration run.
PROBE_EVERY = 2000

GROUP_DATA = "Data"
GROUP_OBJECTIVE = "Objective"
GROUP_MODEL = "Model"
GROUP_OPTIM = "Optimisation"
GROUP_RUN = "Run"
GROUP_SPEED = "Speed"



# Widget hints: how a form shows a field. Without one, a field with choices is a "choice", a bool
# a "toggle" and anything else "text"; "dataset" and "device" are pickers that know their world.
WIDGETS = ("text", "choice", "toggle", "dataset", "device")


def _f(default: Any, help: str, group: str, **meta: Any) -> Any:
    """A dataclass field with its UI metadata: help, group, and optional min/max/choices,
    ``widget`` (a hint from :data:`WIDGETS`), ``objectives`` (the objectives that use it) and
    ``launch_check`` (see :attr:`FieldInfo.launch_check`)."""
    return field(default=default, metadata={"help": help, "group": group, **meta})


def check_dataset_source(name: str) -> None:
    """A known dataset name, and for ``folder:PATH`` an existing folder: checked as the user types
    (launch repeats it in full, with the data itself), so a typo does not make a failed run."""
    from bvae_tui.datasets.loader import folder_missing_error
    from bvae_tui.datasets.registry import get_spec

    problem = folder_missing_error(get_spec(name))
    if problem is not None:
        raise problem


def _has_factors(dataset: str) -> bool | None:
    """Whether ``dataset`` has ground-truth factors; None for a name that is not a dataset (its
    own check reports that)."""
    from bvae_tui.datasets.registry import get_spec

    try:
        return get_spec(dataset).has_factors
    except UserError:
        return None


def factor_datasets() -> list[str]:
    """The datasets that have ground-truth factors (what probes and metrics need)."""
    from bvae_tui.datasets.registry import dataset_names, get_spec

    return [name for name in dataset_names() if get_spec(name).has_factors]


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    # Data
    dataset: str = _f("dsprites", "dataset name, as `bvae data list` shows them (dsprites, "
                      "color-/noisy-/scream-dsprites, shapes3d, smallnorb, cars3d, "
                      "mpi3d-toy|realistic|real, celeba, chairs, ...) or folder:PATH", GROUP_DATA,
                      widget="dataset", launch_check=check_dataset_source)
    # Objective
    objective: str = _f("H", "; ".join(f"{o.name}: {o.loss} ({o.title}, {o.paper})"
                                      for o in OBJECTIVE_INFO.values()),
                        GROUP_OBJECTIVE, choices=OBJECTIVES)
    beta: float = _f(4.0, "weight of the KL (objective H; 1 is the plain VAE) or of the total "
                     "correlation (tcvae)", GROUP_OBJECTIVE, min=0.0, objectives=("H", "tcvae"))
    gamma: float = _f(1000.0, "weight of |KL - C| (objective B)", GROUP_OBJECTIVE, min=0.0,
                      objectives=("B",))
    c_max: float = _f(25.0, "final capacity C in nats (objective B)", GROUP_OBJECTIVE, min=0.0,
                      objectives=("B",))
    c_stop_iter: int = _f(100_000, "iterations over which C rises linearly from 0 to c_max",
                          GROUP_OBJECTIVE, min=1, objectives=("B",))
    alpha: float = _f(1.0, "weight of the index-code mutual information (tcvae)",
                      GROUP_OBJECTIVE, min=0.0, objectives=("tcvae",))
    gamma_dw: float = _f(1.0, "weight of the dimension-wise KL (tcvae)", GROUP_OBJECTIVE,
                         min=0.0, objectives=("tcvae",))
    tc_estimator: str = _f("mss", "estimator of log q(z) from the batch (tcvae): mss, minibatch "
                           "stratified sampling (Chen et al.); mws, minibatch weighted sampling "
                           "(as disentanglement_lib)", GROUP_OBJECTIVE, choices=TC_ESTIMATORS,
                           objectives=("tcvae",))
    gamma_tc: float = _f(40.0, "weight of the discriminator's total-correlation estimate "
                         "(factor)", GROUP_OBJECTIVE, min=0.0, objectives=("factor",))
    disc_lr: float = _f(1e-4, "learning rate of the discriminator's Adam, betas (0.5, 0.9) "
                        "(factor)", GROUP_OBJECTIVE, min=0.0, exclusive_min=True, max=1.0,
                        objectives=("factor",))
    lambda_od: float = _f(10.0, "weight of the squared off-diagonal covariances (dip-i: of the "
                          "encoder means; dip-ii: of the whole posterior)", GROUP_OBJECTIVE,
                          min=0.0, objectives=DIP)
    lambda_d: float | None = _f(None, "weight of the squared deviations of the diagonal from 1; "
                                "empty: 10 x lambda_od for dip-i, lambda_od for dip-ii",
                                GROUP_OBJECTIVE, min=0.0, objectives=DIP)
    recon: str = _f("auto", "reconstruction distribution; auto: the data set's own: bernoulli "
                    "for dSprites and its variants, SmallNORB, Cars3D and MPI3D (as "
                    "disentanglement_lib), gaussian for 3dshapes, CelebA, Chairs and folders",
                    GROUP_OBJECTIVE, choices=RECONS)
    # Model
    z_dim: int = _f(10, "number of latents", GROUP_MODEL, min=1, max=512)
    arch: str = _f("auto", "architecture: H (Higgins) or B (Burgess); auto: B for objective B, "
                   "H for the others", GROUP_MODEL, choices=ARCHITECTURES)
    # The side of the square images (data and networks both); 64 is the papers'. 32 and 128 only
    # for datasets larger than 64x64 at the source (checked at launch, with the data:
    # datasets.image_size).
    image_size: int = _f(64, "image side in pixels: 32, 64 or 128; 32 and 128 for datasets "
                         "larger than 64x64 at the source (celeba, chairs, folder:PATH); the "
                         "networks gain or lose stride-2 stages", GROUP_MODEL)
    # Optimisation
    lr: float = _f(1e-4, "Adam learning rate", GROUP_OPTIM, min=0.0, exclusive_min=True, max=1.0)
    adam_beta1: float = _f(0.9, "Adam beta1", GROUP_OPTIM, min=0.0, max=1.0, exclusive_max=True)
    adam_beta2: float = _f(0.999, "Adam beta2", GROUP_OPTIM, min=0.0, max=1.0, exclusive_max=True)
    batch_size: int = _f(64, "images per batch", GROUP_OPTIM, min=1, max=65536)
    iterations: int = _f(300_000, "total optimiser steps", GROUP_OPTIM, min=1)
    # NumPy seeds its legacy generator from 32 bits: a larger seed is an error at start-up.
    seed: int = _f(1, "random seed (model init, batch order)", GROUP_OPTIM, min=0, max=2**32 - 1)
    # Run
    device: str = _f("auto", "cpu, cuda:N, or auto (the GPU with most free memory, else cpu)",
                     GROUP_RUN, widget="device")
    log_every: int = _f(100, "iterations between metrics rows", GROUP_RUN, min=1)
    checkpoint_every: int = _f(5000, "iterations between checkpoints", GROUP_RUN, min=1)
    checkpoint_minutes: float = _f(CHECKPOINT_MINUTES, "minutes between checkpoints, taken at "
                                   "the next metrics row; whichever of this and "
                                   "--checkpoint-every comes first (0: by iterations only)",
                                   GROUP_RUN, min=0.0)
    preview_every: int = _f(1000, "iterations between traversal previews (0: never)", GROUP_RUN,
                            min=0)
    probe_every: int | None = _f(None, "iterations between probe metrics (MI of each latent "
                                 "with each factor, MIG) in probes.jsonl; by default "
                                 f"{PROBE_EVERY} (at least --log-every) on datasets with "
                                 "ground-truth factors, off on the others; 0: never",
                                 GROUP_RUN, min=0)
    eval_at_end: bool = _f(False, "score disentanglement metrics when training ends",
                           GROUP_RUN)
    # Speed (fast paths; results stay equal within floating-point tolerance)
    channels_last: str = _f("auto", "channels-last memory format (auto: where it is faster)",
                            GROUP_SPEED, choices=TOGGLES)
    amp: str = _f("auto", "bf16 autocast; auto: where the device has bf16 hardware and it "
                  "measured faster (once per machine)", GROUP_SPEED, choices=AMP_MODES)
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on GPU)",
                       GROUP_SPEED)

    # ----------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every field against its metadata; raise one :class:`ConfigError` naming the fix
        (and, in ``field``, the field)."""
        for info in _schema():
            info.check(getattr(self, info.name))
        dataset, device = field_info("dataset"), field_info("device")
        if not self.dataset:
            raise dataset.error(f"must not be empty; e.g. {dataset.option} dsprites")
        if self.image_size not in IMAGE_SIZES:
            raise field_info("image_size").error(
                f"must be 32, 64 or 128; got {self.image_size}")
        dev = self.device
        if not (dev in ("auto", "cpu") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise device.error(f"must be cpu, cuda:N or auto; got {dev!r}")
        # The objectives that compare codes across the batch need enough of them.
        least = {"tcvae": 2, "factor": 4}.get(self.objective, 1)
        if self.batch_size < least:
            why = ("its estimator weighs each code against the rest of the batch"
                   if self.objective == "tcvae" else
                   "two half-batches of at least 2 codes, one of them permuted")
            raise field_info("batch_size").error(
                f"must be at least {least} for objective {self.objective} ({why}); "
                f"got {self.batch_size}")
        self._check_probes()
        return self

    def _check_probes(self) -> None:
        """An explicit probe interval needs factors to probe, and rows to fall between: one
        below the log interval would probe more often than the loss is even recorded."""
        every = self.probe_every
        if not every:
            return
        info = field_info("probe_every")
        if _has_factors(self.dataset) is False:
            which = ", ".join(factor_datasets())
            raise info.error(f"needs a dataset with ground-truth factors ({which}); dataset "
                             f"{self.dataset!r} has none: leave it out or give 0")
        if every < self.log_every:
            raise info.error(f"must be at least --log-every ({self.log_every}); got {every}")

    def check_given(self, given: Mapping[str, Any]) -> None:
        """Refuse explicitly given values of fields this config's objective does not use (the
        defaults and a preset's values may be anything): ``--gamma-tc is used by objective
        factor, not H``."""
        for name in given:
            info = field_info(name)
            if not info.applies({"objective": self.objective}):
                users = info.objectives or ()
                which = (f"objective {users[0]}" if len(users) == 1 else
                         f"objectives {', '.join(users[:-1])} and {users[-1]}")
                raise info.error(f"is used by {which}, not {self.objective}")

    # Derived values -----------------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        """The architecture actually built: ``arch``, or when ``auto`` B for objective B and H
        (the one of Locatello et al.'s study) for the others."""
        if self.arch != "auto":
            return self.arch
        return "B" if self.objective == "B" else "H"

    @property
    def probe_interval(self) -> int:
        """Iterations between probes (0: none): ``probe_every``, else :data:`PROBE_EVERY` (at
        least ``log_every``) where the dataset has ground-truth factors."""
        if self.probe_every is not None:
            return self.probe_every
        return max(PROBE_EVERY, self.log_every) if _has_factors(self.dataset) else 0

    @property
    def dip_lambda_d(self) -> float:
        """DIP-VAE's diagonal weight: ``lambda_d``, else 10 x lambda_od (I) or lambda_od (II)."""
        if self.lambda_d is not None:
            return self.lambda_d
        return 10.0 * self.lambda_od if self.objective == "dip-i" else self.lambda_od

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. config.json); unknown keys are an error, missing ones default."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# Paper settings (see REFERENCE.md). Values here override the defaults; options given on the
# command line or in the form override the preset.
PRESETS: dict[str, dict[str, Any]] = {
    "dsprites-H": {"dataset": "dsprites", "objective": "H", "beta": 4.0, "lr": 1e-4},
    "dsprites-VAE": {"dataset": "dsprites", "objective": "H", "beta": 1.0, "lr": 1e-4},
    "dsprites-B": {"dataset": "dsprites", "objective": "B", "gamma": 100.0, "c_max": 20.0,
                   "c_stop_iter": 100_000, "lr": 5e-4},
    "dsprites-B-paper": {"dataset": "dsprites", "objective": "B", "gamma": 1000.0,
                         "c_max": 25.0, "c_stop_iter": 100_000, "lr": 5e-4},
    "celeba-H": {"dataset": "celeba", "objective": "H", "beta": 10.0, "z_dim": 32, "lr": 1e-4},
    "chairs-H": {"dataset": "chairs", "objective": "H", "beta": 4.0, "z_dim": 16, "lr": 1e-4},
    # Locatello et al. 2019's study (arch H, z 10, batch 64, lr 1e-4, 300,000 steps: the
    # defaults), at a middle value of each grid in STUDY_GRIDS.
    "dsprites-tcvae": {"dataset": "dsprites", "objective": "tcvae", "beta": 6.0},
    "dsprites-factor": {"dataset": "dsprites", "objective": "factor", "gamma_tc": 40.0},
    "dsprites-dip-i": {"dataset": "dsprites", "objective": "dip-i", "lambda_od": 10.0},
    "dsprites-dip-ii": {"dataset": "dsprites", "objective": "dip-ii", "lambda_od": 10.0},
}


def preset(name: str) -> dict[str, Any]:
    """The overrides of a preset, or a :class:`ConfigError` listing the valid names."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None


def make_config(preset_name: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the preset, then explicit overrides (``None``: not given); validated, and
    no override may set a field the objective does not use."""
    values: dict[str, Any] = preset(preset_name) if preset_name else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    cfg = TrainConfig.from_dict(values).validate()
    cfg.check_given(given)
    return cfg


@dataclass(frozen=True)
class FieldInfo:
    """One field of the schema, as the faces need it."""

    name: str
    type: type
    default: Any
    help: str
    group: str
    widget: str = "text"
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    objectives: tuple[str, ...] | None = None  # None: every objective uses it
    nullable: bool = False  # None is a value: "not set, derived from other fields"
    # A cheap check against the world (files on disk) for a form to run as the user types; not
    # part of validate, so a saved config stays readable after, say, its folder is gone.
    launch_check: Callable[[Any], None] | None = field(default=None, compare=False)

    @property
    def option(self) -> str:
        """The command-line option: ``z_dim`` -> ``--z-dim``."""
        return "--" + self.name.replace("_", "-")

    @property
    def negative_option(self) -> str:
        """The option that turns a bool field off: ``--no-compile``."""
        return "--no-" + self.option[2:]

    def words(self, value: Any) -> list[str]:
        """The command-line words that set this field to ``value`` (none for None: not giving
        a nullable option leaves it None)."""
        if value is None:
            return []
        if self.type is bool:
            return [self.option if value else self.negative_option]
        return [self.option, self.show(value)]

    def show(self, value: Any) -> str:
        """``value`` as text for a form or a command line (floats short but exact)."""
        if value is None:
            return ""
        if isinstance(value, float):
            short = f"{value:g}"
            return short if float(short) == value else repr(value)
        return str(value)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the field matters for a config with these values (e.g. gamma only under
        objective B); a form hides the fields that do not."""
        return self.objectives is None or values.get("objective") in self.objectives

    def error(self, problem: str) -> ConfigError:
        """``--option problem`` as a :class:`ConfigError` about this field."""
        return ConfigError(f"{self.option} {problem}", field=self.name)

    def check(self, value: Any) -> None:
        """The field's own checks: type, choices, bounds."""
        if value is None and self.nullable:
            return
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(f"must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise self.error(f"must be a finite number, got {value!r}")
        elif self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(f"must be a whole number, got {value!r}")
        elif self.type is bool and not isinstance(value, bool):
            raise self.error(f"must be true or false, got {value!r}")
        elif self.type is str and not isinstance(value, str):
            raise self.error(f"must be text, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise self.error(f"must be one of {', '.join(self.choices)}; got {value!r}")
        lo, hi = self.min, self.max
        if lo is not None and (value < lo or (self.exclusive_min and value == lo)):
            rel = "greater than" if self.exclusive_min else "at least"
            raise self.error(f"must be {rel} {self.show(lo)}; got {self.show(value)}")
        if hi is not None and (value > hi or (self.exclusive_max and value == hi)):
            rel = "less than" if self.exclusive_max else "at most"
            raise self.error(f"must be {rel} {self.show(hi)}; got {self.show(value)}")

    def parse(self, text: str) -> Any:
        """Parse form text into the field's type, or raise a :class:`ConfigError`. Empty text is
        None for a nullable field."""
        text = text.strip()
        if self.nullable and not text:
            return None
        try:
            if self.type is bool:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if self.type is int:
                as_float = float(text)  # accept 1e5
                if not as_float.is_integer():
                    raise ValueError
                return int(as_float)
            if self.type is float:
                return float(text)
            return text
        except ValueError:
            kind = {bool: "true or false", int: "a whole number", float: "a number"}[self.type]
            raise self.error(f"must be {kind}; got {text!r}") from None


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


@cache
def _schema() -> tuple[FieldInfo, ...]:
    out = []
    for f in dataclasses.fields(TrainConfig):
        m = f.metadata
        annotation = f.type if isinstance(f.type, str) else f.type.__name__
        nullable = annotation.endswith(" | None")
        ftype = _TYPES[annotation.removesuffix(" | None")]
        default_widget = "choice" if "choices" in m else "toggle" if ftype is bool else "text"
        widget = m.get("widget", default_widget)
        if widget not in WIDGETS:
            raise ValueError(f"field {f.name}: unknown widget hint {widget!r}")
        out.append(FieldInfo(
            name=f.name,
            type=ftype,
            default=f.default,
            help=m["help"],
            group=m["group"],
            widget=widget,
            choices=tuple(m["choices"]) if "choices" in m else None,
            min=m.get("min"),
            max=m.get("max"),
            exclusive_min=bool(m.get("exclusive_min")),
            exclusive_max=bool(m.get("exclusive_max")),
            objectives=tuple(m["objectives"]) if "objectives" in m else None,
            nullable=nullable,
            launch_check=m.get("launch_check"),
        ))
    return tuple(out)


def schema() -> list[FieldInfo]:
    """The fields of :class:`TrainConfig` in declaration order, with their metadata."""
    return list(_schema())


def field_info(name: str) -> FieldInfo:
    """The schema entry of one field."""
    return next(info for info in _schema() if info.name == name)


def parse_value(info: FieldInfo, text: str) -> Any:
    """Parse a form string into the field's type, or raise :class:`ConfigError` (for the TUI)."""
    return info.parse(text)


def check_field(info: FieldInfo, raw: Any) -> Any:
    """One field on its own, as a form checks it while the user types: text parsed into the
    field's type, then the schema's checks and the field's launch check. Returns the value;
    raises a :class:`ConfigError` whose ``field`` is the field."""
    value = info.parse(raw) if isinstance(raw, str) and info.type is not str else raw
    TrainConfig(**{info.name: value}).validate()  # the other fields keep their valid defaults
    if info.launch_check is not None:
        try:
            info.launch_check(value)
        except UserError as exc:
            if isinstance(exc, ConfigError) and exc.field:
                raise
            raise ConfigError(str(exc), field=info.name) from None
    return value
