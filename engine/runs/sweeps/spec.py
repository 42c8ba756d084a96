"""What a sweep is before it exists: values per field, a preset, and how to execute it.

A spec comes from the command line (``bvae sweep --beta 1,4 --seed 1..3 ...``), from a TOML file
(``--spec FILE.toml``), or both (the command line wins, field by field). A spec file::

    name = "beta-grid"
    description = "what it reproduces"
    preset = "dsprites-H"

    [fixed]                 # one value per field
    iterations = 300000
    eval_at_end = true

    [sweep]                 # a list or a range per field; the first one is the grid's rows
    beta = [1, 2, 4, 6, 8, 16]
    seed = "0..4"

    [executor]              # optional; the command line's options win
    kind = "local"          # or "slurm"
    gpus = [0, 1]
    per_gpu = 1

    [executor.slurm]
    partition = "gpu"
    time = "24:00:00"
    gpus_per_node = 1
    mem = "16G"
    array_parallelism = 8
    args = { account = "my-project" }

Every Slurm value ends up on a ``#SBATCH`` line of a shell script, so each is checked when the
spec is read, before anything exists: option names are sbatch's long options (lowercase letters,
digits, dashes; ``cpus_per_task`` is read as ``cpus-per-task``), and no value (nor the sweep's
name, which becomes the job name) may hold a control character: a newline would end the line
and start a shell command.

Built-in specs live in ``specs/`` beside this module (``--spec builtin:NAME``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from bvae_tui.engine.config import TrainConfig, make_config
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.sweeps.grid import (
    check_axes_apply,
    grid,
    known_field,
    member_count,
    member_given,
    parse_values,
)

EXECUTORS = ("local", "slurm")
BUILTIN_PREFIX = "builtin:"
_MEM = re.compile(r"\d+(\.\d+)?[KMGT]?B?", re.IGNORECASE)  # fullmatch: "$" allows a "\n"
_SLURM_KEY = re.compile(r"[a-z][a-z0-9-]*")
# C0 (newline, carriage return, tab), DEL, C1 and the Unicode line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_one_line(value: object, what: str) -> None:
    """A ConfigError when ``value`` holds a control character (shown escaped, so the message
    stays one line)."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ConfigError(f"{what} {value!r} has a control character (a newline, tab or "
                          "escape); give it on one line of printable text")


def slurm_key(key: str) -> str:
    """An sbatch long option name (``cpus_per_task`` read as ``cpus-per-task``), or a
    ConfigError naming it."""
    name = key.replace("_", "-") if isinstance(key, str) else ""
    if not _SLURM_KEY.fullmatch(name):
        raise ConfigError(f"Slurm option {key!r} is not an sbatch option name; use its long "
                          "name in lowercase letters, digits and dashes, e.g. account or "
                          "cpus-per-task")
    return name


def slurm_args(pairs: Mapping[str, Any]) -> dict[str, str]:
    """Extra sbatch options, checked: name -> value as text."""
    out = {}
    for key, value in pairs.items():
        name = slurm_key(key)
        check_one_line(str(value), f"Slurm option {name}'s value")
        out[name] = str(value)
    return out


@dataclass
class SlurmSettings:
    """The Slurm resources of every member (one array job); None: Slurm's default."""

    partition: str | None = None
    time: int | None = None  # minutes
    gpus_per_node: int | None = None
    mem: str | None = None  # as sbatch takes it: 16G, 16000M
    array_parallelism: int | None = None
    args: dict[str, str] = field(default_factory=dict)  # any other sbatch option

    def merged(self, other: SlurmSettings) -> SlurmSettings:
        changes = {f.name: getattr(other, f.name) for f in dataclasses.fields(self)
                   if f.name != "args" and getattr(other, f.name) is not None}
        return dataclasses.replace(self, **changes, args={**self.args, **other.args})

    def check(self) -> None:
        """A ConfigError for a value that cannot go on an ``#SBATCH`` line as it is."""
        check_one_line(self.partition, "--partition")
        if self.mem is not None and not (isinstance(self.mem, str)
                                         and _MEM.fullmatch(self.mem)):
            raise ConfigError(f"--mem {self.mem!r} is not a memory size; e.g. 16G or 16000M")
        for key, value in self.args.items():
            if slurm_key(key) != key:
                raise ConfigError(f"Slurm option {key!r}: write it with dashes, "
                                  f"{slurm_key(key)!r}")
            check_one_line(value, f"Slurm option {key}'s value")


@dataclass
class ExecutorSettings:
    """Where members run: ``local`` (a scheduler on this machine) or ``slurm``."""

    kind: str | None = None  # None: local
    gpus: list[int] | None = None  # None: every GPU NVML sees
    per_gpu: int | None = None
    slots: int | None = None  # runs at once on the CPU
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def merged(self, other: ExecutorSettings) -> ExecutorSettings:
        changes = {f.name: getattr(other, f.name) for f in dataclasses.fields(self)
                   if f.name != "slurm" and getattr(other, f.name) is not None}
        return dataclasses.replace(self, **changes, slurm=self.slurm.merged(other.slurm))

    @property
    def executor(self) -> str:
        return self.kind or "local"

    def check(self) -> ExecutorSettings:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}; "
                              f"got {self.kind!r}")
        for name, value in (("--per-gpu", self.per_gpu), ("--slots", self.slots),
                            ("--gpus-per-node", self.slurm.gpus_per_node),
                            ("--array-parallelism", self.slurm.array_parallelism),
                            ("--time", self.slurm.time)):
            if value is not None and value < (0 if name == "--gpus-per-node" else 1):
                raise ConfigError(f"{name} must be at least "
                                  f"{0 if name == '--gpus-per-node' else 1}; got {value}")
        if self.gpus is not None and any(g < 0 for g in self.gpus):
            raise ConfigError("--gpus takes GPU numbers as 'bvae gpus' lists them; "
                              f"got {self.gpus}")
        self.slurm.check()
        return self


@dataclass
class SweepSpec:
    """Values per field (one value: fixed; more: a grid axis, in the order given)."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    preset: str | None = None
    name: str | None = None
    description: str | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    # A study (``[[part]]`` tables): one grid per part, each created as its own sweep; a part
    # carries its own name (``part``) and the study's values beneath its own.
    parts: list[SweepSpec] = field(default_factory=list)
    part: str | None = None

    @property
    def axes(self) -> list[str]:
        if self.parts:  # every part's axes, in order of first appearance
            return list(dict.fromkeys(a for p in self.parts for a in p.axes))
        return [name for name, vals in self.values.items() if len(vals) > 1]

    @property
    def fixed(self) -> dict[str, Any]:
        return {name: vals[0] for name, vals in self.values.items() if len(vals) == 1}

    def merged(self, other: SweepSpec) -> SweepSpec:
        """This spec with ``other``'s values and settings where it gives them (a field given
        again keeps its place in the grid's order). A study merges ``other`` into each part."""
        if self.parts:
            given = SweepSpec(values=other.values, preset=other.preset,
                              executor=other.executor)
            return dataclasses.replace(
                self, name=other.name or self.name,
                description=other.description or self.description,
                executor=self.executor.merged(other.executor),
                parts=[p.merged(given) for p in self.parts])
        values = {**self.values, **other.values}
        return SweepSpec(values=values, preset=other.preset or self.preset,
                         name=other.name or self.name,
                         description=other.description or self.description,
                         executor=self.executor.merged(other.executor), part=self.part)

    def sweeps(self) -> list[SweepSpec]:
        """The sweeps this spec creates: itself, or a study's parts named ``<study>-<part>``."""
        if not self.parts:
            return [self]
        return [dataclasses.replace(p, name=f"{self.name}-{p.part}" if self.name else p.part)
                for p in self.parts]

    def count(self) -> int:
        if self.parts:
            return sum(p.count() for p in self.parts)
        return member_count(self.values, self.axes)

    def members(self) -> Iterator[tuple[dict[str, Any], TrainConfig]]:
        """Each member's swept values and full config, validated, in grid order."""
        if self.parts:
            for p in self.parts:
                yield from p.members()
            return
        check_axes_apply(self.values, self.axes)
        for swept in grid(self.values, self.axes):
            yield swept, make_config(self.preset, **member_given(self.fixed, swept))


# --------------------------------------------------------------------------------------------
# Spec files


def parse_field_values(raw: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Field name (dashes or underscores) -> raw value(s), checked against the schema."""
    out: dict[str, list[Any]] = {}
    for name, value in raw.items():
        info = known_field(name)
        out[info.name] = parse_values(info, value)
    return out


def builtin_specs() -> dict[str, Path]:
    """Name -> file of each built-in spec."""
    folder = resources.files(__package__) / "specs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir()
            if str(p).endswith(".toml")}


def load_spec(ref: str) -> SweepSpec:
    """A spec file, or ``builtin:NAME``; a ConfigError names the file and the problem."""
    if ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX):]
        specs = builtin_specs()
        if name not in specs:
            raise ConfigError(f"no built-in spec '{name}'; 'bvae sweep specs' lists: "
                              f"{', '.join(sorted(specs))}")
        path = specs[name]
    else:
        path = Path(ref).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read spec {path} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"spec {path} is not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"spec {path} is not a text file") from None
    try:
        return spec_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"spec {path}: {exc}", field=exc.field) from None


_TOP_KEYS = ("name", "description", "preset", "fixed", "sweep", "executor", "part")
_PART_KEYS = ("name", "description", "fixed", "sweep")
_EXECUTOR_KEYS = ("kind", "gpus", "per_gpu", "slots", "slurm")
_SLURM_KEYS = ("partition", "time", "gpus_per_node", "mem", "array_parallelism", "args")


def _table(data: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    unknown = sorted(set(data) - set(allowed)) if allowed else []
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in [{where}]; "
                          f"known: {', '.join(allowed)}")
    return data


def _typed(value: Any, kind: type, what: str) -> Any:
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{what} must be a whole number; got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{what} must be text; got {value!r}")
    return value


def _fixed_and_swept(top: dict[str, Any], where: str = "") -> dict[str, Any]:
    """The ``fixed`` and ``sweep`` tables of ``top``, checked, as one mapping of raw values."""
    fixed = _table(top.get("fixed", {}), f"{where}fixed", ())
    swept = _table(top.get("sweep", {}), f"{where}sweep", ())
    for name, value in fixed.items():
        if isinstance(value, list):
            raise ConfigError(f"[{where}fixed] {name} is a list; put lists under [{where}sweep]")
    both = sorted(set(fixed) & set(swept))
    if both:
        raise ConfigError(f"{', '.join(both)} both fixed and swept; keep one")
    return {**fixed, **swept}


def _parts(raw: Any, values: dict[str, list[Any]], preset: str | None,
           executor: ExecutorSettings) -> list[SweepSpec]:
    """A study's ``[[part]]`` tables: each part's values over the study's (seeds last, so they
    vary fastest in each part's grid)."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("part must be an array of tables ([[part]])")
    parts, names = [], set()
    for i, table in enumerate(raw, start=1):
        t = _table(table, f"part {i}", _PART_KEYS)
        label = _name(_typed(t.get("name"), str, f"part {i}'s name"))
        if not label:
            raise ConfigError(f"[[part]] {i} needs a name (it names the part's sweep)")
        if label in names:
            raise ConfigError(f"two parts are named {label!r}; name each part once")
        names.add(label)
        own = parse_field_values(_fixed_and_swept(t, "part."))
        merged = {**values, **own}
        if "seed" in merged:
            merged["seed"] = merged.pop("seed")
        parts.append(SweepSpec(values=merged, preset=preset, part=label,
                               description=_typed(t.get("description"), str, "description"),
                               executor=executor))
    return parts


def spec_from_dict(data: dict[str, Any]) -> SweepSpec:
    top = _table(data, "top level", _TOP_KEYS)
    raw_values = _fixed_and_swept(top)
    ex = _table(top.get("executor", {}), "executor", _EXECUTOR_KEYS)
    sl = _table(ex.get("slurm", {}), "executor.slurm", _SLURM_KEYS)
    gpus = ex.get("gpus")
    if gpus == "all":
        gpus = None
    elif gpus is not None and (not isinstance(gpus, list)
                               or not all(isinstance(g, int) for g in gpus)):
        raise ConfigError(f"[executor] gpus must be a list of GPU numbers or \"all\"; got {gpus!r}")
    args = _table(sl.get("args", {}), "executor.slurm.args", ())
    slurm = SlurmSettings(
        partition=_typed(sl.get("partition"), str, "partition"),
        time=parse_time(sl["time"]) if "time" in sl else None,
        gpus_per_node=_typed(sl.get("gpus_per_node"), int, "gpus_per_node"),
        mem=_typed(sl.get("mem"), str, "mem"),
        array_parallelism=_typed(sl.get("array_parallelism"), int, "array_parallelism"),
        args=slurm_args(args))
    executor = ExecutorSettings(kind=_typed(ex.get("kind"), str, "kind"), gpus=gpus,
                                per_gpu=_typed(ex.get("per_gpu"), int, "per_gpu"),
                                slots=_typed(ex.get("slots"), int, "slots"), slurm=slurm)
    values = parse_field_values(raw_values)
    preset = _typed(top.get("preset"), str, "preset")
    executor = executor.check()
    return SweepSpec(values=values, preset=preset,
                     name=_name(_typed(top.get("name"), str, "name")),
                     description=_typed(top.get("description"), str, "description"),
                     executor=executor,
                     parts=_parts(top["part"], values, preset, executor) if "part" in top
                     else [])


def _name(name: str | None) -> str | None:
    check_one_line(name, "the sweep name")  # it names the runs and the Slurm job
    return name


def parse_time(value: Any) -> int:
    """Slurm's time limit in whole minutes, from minutes (90) or Slurm's forms: "M", "M:S",
    "H:M:S", "D-H", "D-H:M", "D-H:M:S" (seconds round up)."""
    problem = ConfigError(f"--time {value!r} is not a time limit; give minutes (90) or "
                          "H:MM:SS (1:30:00) or D-HH:MM:SS")
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str):
        check_one_line(value, "--time")  # int() would let "30\n" through
        days_text, dash, rest = value.strip().partition("-")
        if not dash:
            days_text, rest = "0", days_text
        try:
            days, parts = int(days_text), [int(p) for p in rest.split(":")]
        except ValueError:
            raise problem from None
        if dash:  # D-H, D-H:M, D-H:M:S
            parts = (parts + [0, 0])[:3] if len(parts) <= 3 else []
        else:  # M, M:S, H:M:S
            parts = {1: [0, parts[0], 0], 2: [0, *parts], 3: parts}.get(len(parts), [])
        if len(parts) != 3 or min(parts) < 0 or days < 0:
            raise problem
        hours, mins, secs = parts
        minutes = days * 1440 + hours * 60 + mins + (1 if secs else 0)
    else:
        raise problem
    if minutes < 1:
        raise ConfigError(f"--time must be at least a minute; got {value!r}")
    return minutes
