"""One training configuration schema, shared by the CLI, the TUI form and the worker.

Each field of :class:`TrainConfig` carries its default, bounds, choices, help text and help group
in ``dataclasses.field(metadata=...)``. The CLI builds its ``bvae train`` options from
:func:`schema`, the TUI builds its form from the same, and :meth:`TrainConfig.validate` is the only
place values are checked, so the two faces cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bvae_tui.engine.errors import ConfigError

OBJECTIVES = ("H", "B")
ARCHITECTURES = ("auto", "H", "B")
RECONS = ("auto", "bernoulli", "gaussian")
AMP_MODES = ("off", "bf16")
TOGGLES = ("auto", "on", "off")

GROUP_DATA = "Data"
GROUP_OBJECTIVE = "Objective"
GROUP_MODEL = "Model"
GROUP_OPTIM = "Optimisation"
GROUP_RUN = "Run"
GROUP_SPEED = "Speed"


def _f(default: Any, help: str, group: str, **meta: Any) -> Any:
    """A dataclass field with its UI metadata: help, group, and optional min/max/choices."""
    return field(default=default, metadata={"help": help, "group": group, **meta})


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    # Data
    dataset: str = _f("dsprites", "dataset name (dsprites, dsprites-mini, celeba, chairs, "
                      "folder:PATH)", GROUP_DATA)
    # Objective
    objective: str = _f("H", "H: recon + beta*KL (Higgins); B: recon + gamma*|KL - C| (Burgess)",
                        GROUP_OBJECTIVE, choices=OBJECTIVES)
    beta: float = _f(4.0, "weight of the KL term (objective H); 1 is the plain VAE",
                     GROUP_OBJECTIVE, min=0.0)
    gamma: float = _f(1000.0, "weight of |KL - C| (objective B)", GROUP_OBJECTIVE, min=0.0)
    c_max: float = _f(25.0, "final capacity C in nats (objective B)", GROUP_OBJECTIVE, min=0.0)
    c_stop_iter: int = _f(100_000, "iterations over which C rises linearly from 0 to c_max",
                          GROUP_OBJECTIVE, min=1)
    recon: str = _f("auto", "reconstruction distribution; auto: bernoulli for binary data, "
                    "gaussian otherwise", GROUP_OBJECTIVE, choices=RECONS)
    # Model
    z_dim: int = _f(10, "number of latents", GROUP_MODEL, min=1, max=512)
    arch: str = _f("auto", "architecture: H (Higgins) or B (Burgess); auto follows the objective",
                   GROUP_MODEL, choices=ARCHITECTURES)
    # Optimisation
    lr: float = _f(1e-4, "Adam learning rate", GROUP_OPTIM, min=0.0, exclusive_min=True, max=1.0)
    adam_beta1: float = _f(0.9, "Adam beta1", GROUP_OPTIM, min=0.0, max=1.0, exclusive_max=True)
    adam_beta2: float = _f(0.999, "Adam beta2", GROUP_OPTIM, min=0.0, max=1.0, exclusive_max=True)
    batch_size: int = _f(64, "images per batch", GROUP_OPTIM, min=1, max=65536)
    iterations: int = _f(300_000, "total optimiser steps", GROUP_OPTIM, min=1)
    seed: int = _f(1, "random seed (model init, batch order)", GROUP_OPTIM, min=0)
    # Run
    device: str = _f("auto", "cpu, cuda:N, or auto (the GPU with most free memory, else cpu)",
                     GROUP_RUN)
    log_every: int = _f(100, "iterations between metrics rows", GROUP_RUN, min=1)
    checkpoint_every: int = _f(5000, "iterations between checkpoints", GROUP_RUN, min=1)
    preview_every: int = _f(1000, "iterations between traversal previews (0: never)", GROUP_RUN,
                            min=0)
    eval_at_end: bool = _f(False, "score disentanglement metrics when training ends",
                           GROUP_RUN)
    # Speed (fast paths; results stay equal within floating-point tolerance)
    channels_last: str = _f("auto", "channels-last memory format (auto: where it is faster)",
                            GROUP_SPEED, choices=TOGGLES)
    amp: str = _f("off", "autocast precision on GPU (bf16 is faster, slightly less exact)",
                  GROUP_SPEED, choices=AMP_MODES)
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on GPU)",
                       GROUP_SPEED)

    # ----------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every field against its metadata; raise one :class:`ConfigError` naming the fix."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            opt = "--" + f.name.replace("_", "-")
            if f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{opt} must be a number, got {value!r}")
                if not math.isfinite(float(value)):
                    raise ConfigError(f"{opt} must be a finite number, got {value!r}")
            if f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{opt} must be a whole number, got {value!r}")
            if "choices" in meta and value not in meta["choices"]:
                raise ConfigError(f"{opt} must be one of {', '.join(meta['choices'])}; "
                                  f"got {value!r}")
            if "min" in meta:
                lo = meta["min"]
                if value < lo or (meta.get("exclusive_min") and value == lo):
                    rel = "greater than" if meta.get("exclusive_min") else "at least"
                    raise ConfigError(f"{opt} must be {rel} {lo:g}; got {value:g}")
            if "max" in meta:
                hi = meta["max"]
                if value > hi or (meta.get("exclusive_max") and value == hi):
                    rel = "less than" if meta.get("exclusive_max") else "at most"
                    raise ConfigError(f"{opt} must be {rel} {hi:g}; got {value:g}")
        if not self.dataset:
            raise ConfigError("--dataset must not be empty; e.g. --dataset dsprites")
        dev = self.device
        if not (dev in ("auto", "cpu") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"--device must be cpu, cuda:N or auto; got {dev!r}")
        return self

    # Derived values -----------------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        """The architecture actually built: ``arch``, or the objective's own when ``auto``."""
        return self.objective if self.arch == "auto" else self.arch

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
}


def preset(name: str) -> dict[str, Any]:
    """The overrides of a preset, or a :class:`ConfigError` listing the valid names."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None


def make_config(preset_name: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the preset, then explicit overrides (``None``: not given); validated."""
    values: dict[str, Any] = preset(preset_name) if preset_name else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values).validate()


@dataclass(frozen=True)
class FieldInfo:
    """One field of the schema, as the faces need it."""

    name: str
    type: type
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def schema() -> list[FieldInfo]:
    """The fields of :class:`TrainConfig` in declaration order, with their metadata."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        m = f.metadata
        out.append(FieldInfo(
            name=f.name,
            type=_TYPES[f.type] if isinstance(f.type, str) else f.type,
            default=f.default,
            help=m["help"],
            group=m["group"],
            choices=tuple(m["choices"]) if "choices" in m else None,
            min=m.get("min"),
            max=m.get("max"),
        ))
    return out


def parse_value(info: FieldInfo, text: str) -> Any:
    """Parse a form string into the field's type, or raise :class:`ConfigError` (for the TUI)."""
    text = text.strip()
    try:
        if info.type is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if info.type is int:
            as_float = float(text)  # accept 1e5
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        if info.type is float:
            return float(text)
        return text
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[info.type]
        raise ConfigError(f"{info.option} must be {kind}; got {text!r}") from None
