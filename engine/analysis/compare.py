"""Comparing runs: what differs between them, groups over config fields, and their curves.

A comparison takes any list of runs (picked by hand, by a filter, or the members of a sweep) and
answers "did β = 8 do better than β = 4, across seeds?": the config fields whose values differ
name each run (``β=4 seed=2``), the runs are grouped over one or more of those fields (by default
all that differ except the seed, so each group holds the seeds of one setting), and each group's
curves are aligned on one iteration grid to give a mean line and a min-max band. Score tables
are in :mod:`bvae_tui.engine.analysis.compare_table`.

Headless: `bvae compare`, `bvae export csv|tensorboard` and the TUI's compare screen share it.
Runs are read through the run store's typed records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.engine.config import GROUP_RUN, GROUP_SPEED, FieldInfo, schema
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.files import stat_key
from bvae_tui.engine.runs.records import EvalResult, MetricsRow
from bvae_tui.engine.runs.store import MetricsTail, Run

ACTIVE_KL = 0.1  # nats; a latent below this carries next to nothing about the input
CURVES = ("loss", "recon", "kl", "c")
# How the legend writes a field (others go by their config name).
SYMBOLS = {"beta": "β", "gamma": "γ", "c_max": "C", "c_stop_iter": "C_iter", "z_dim": "z",
           "batch_size": "batch", "iterations": "iters", "objective": "obj"}
# Fields that say where and how a run was carried out, not what was trained: two runs that
# differ only in these are the same experiment, so legends and default groups leave them out.
_BOOKKEEPING_GROUPS = (GROUP_RUN, GROUP_SPEED)
PER_RUN = "run"  # `--by run`: every run its own group
# Group colours (Tableau 10, matplotlib's default cycle): the TUI and the figures agree.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def colour(index: int) -> str:
    """The colour of group ``index`` (the palette repeats past ten groups)."""
    return PALETTE[index % len(PALETTE)]


def _fields() -> dict[str, FieldInfo]:
    return {info.name: info for info in schema()}


# --------------------------------------------------------------------------------------------
# One run's data


@dataclass
class CompareRun:
    """What a comparison needs of one run: its config, curves, last row and scores."""

    id: str
    name: str
    path: Path
    state: str
    config: dict[str, Any]  # config.json's, missing fields at their schema defaults
    iters: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # CURVES -> values (nan: none)
    last: MetricsRow | None = None
    eval: EvalResult | None = None

    @property
    def rows(self) -> int:
        return int(self.iters.size)

    @property
    def scores(self) -> dict[str, float]:
        return dict(self.eval.scores) if self.eval else {}

    @property
    def evaluated(self) -> bool:
        return bool(self.eval and self.eval.scores)

    def final(self, name: str) -> float | None:
        """The last finite value of curve ``name``."""
        values = self.curves.get(name)
        if values is None:
            return None
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if finite.size else None

    def latents(self) -> list[float]:
        """The last row's KL per latent, largest first."""
        kl = self.last.kl_per_latent if self.last else None
        return sorted((v for v in kl or [] if math.isfinite(v)), reverse=True)

    def active(self) -> int | None:
        """Latents whose last KL is above :data:`ACTIVE_KL`."""
        if not self.last or self.last.kl_per_latent is None:
            return None
        return sum(v > ACTIVE_KL for v in self.last.kl_per_latent)

    def value(self, metric: str) -> float | None:
        """A metric of this run: an eval score, or a training figure of the last rows."""
        if metric == "active":
            active = self.active()
            return None if active is None else float(active)
        if metric in CURVES:
            return self.final(metric)
        score = self.scores.get(metric)
        return score if score is not None and math.isfinite(score) else None


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the fields it lacks (a run of an older version) at their defaults."""
    return {**{name: info.default for name, info in _fields().items()}, **config}


class RunReader:
    """Follows one run directory: new metrics rows only, eval.json and config when they change."""

    def __init__(self, run: Run):
        self.run = run
        self._tail = MetricsTail(run.metrics_path)
        self._columns: dict[str, list[float]] = {name: [] for name in ("iter", *CURVES)}
        self._last: MetricsRow | None = None
        self._keys: tuple[Any, ...] | None = None
        self._eval: EvalResult | None = None
        self._summary: Any = None
        self.snapshot: CompareRun | None = None

    def poll(self) -> bool:
        """Read what changed; True when :attr:`snapshot` is new."""
        rows = self._tail.read_new()
        if rows and (rows[0].iter or 0) <= (self._columns["iter"] or [-1])[-1]:
            for values in self._columns.values():  # the file was replaced (a resume truncated it)
                values.clear()
        for row in rows:
            if row.iter is None:
                continue
            self._columns["iter"].append(float(row.iter))
            for name in CURVES:
                value = getattr(row, name)
                self._columns[name].append(math.nan if value is None else float(value))
            self._last = row
        keys = (stat_key(self.run.config_path), stat_key(self.run.status_path),
                stat_key(self.run.eval_path))
        if not rows and keys == self._keys and self.snapshot is not None:
            return False
        if keys != self._keys:
            self._keys = keys
            self._eval = self.run.eval_results()
            self._summary = self.run.summary()
        summary = self._summary
        self.snapshot = CompareRun(
            id=self.run.id, name=summary.name, path=self.run.path, state=summary.state,
            config=full_config(summary.config),
            iters=np.asarray(self._columns["iter"], dtype=np.float64),
            curves={name: np.asarray(self._columns[name], dtype=np.float64) for name in CURVES},
            last=self._last, eval=self._eval)
        return True


def load_runs(runs: Iterable[Run]) -> list[CompareRun]:
    """Every run's data, read once."""
    out = []
    for run in runs:
        reader = RunReader(run)
        reader.poll()
        assert reader.snapshot is not None
        out.append(reader.snapshot)
    return out


class RunsFollower:
    """Follows a fixed list of runs (the TUI's compare screen): each poll reads only new rows."""

    def __init__(self, runs: Iterable[Run]):
        self.readers = [RunReader(run) for run in runs]

    def poll(self) -> list[CompareRun] | None:
        """The runs' data when anything changed since the last poll, else None. A run deleted
        meanwhile keeps its last data."""
        changed = False
        for reader in self.readers:
            if reader.run.path.is_dir():
                changed = reader.poll() or changed
        if not changed:
            return None
        return [r.snapshot for r in self.readers if r.snapshot is not None]


# --------------------------------------------------------------------------------------------
# Choosing runs


def filter_runs(runs: Iterable[Run], text: str) -> list[Run]:
    """The runs whose id, name, state, dataset, objective or device hold every word of ``text``
    (case-insensitive; the runs screen's filter)."""
    words = text.lower().split()
    out = []
    for run in runs:
        s = run.summary()
        hay = " ".join(str(v) for v in (s.id, s.name, s.state, s.dataset, s.objective, s.device)
                       if v).lower()
        if all(word in hay for word in words):
            out.append(run)
    return out


# --------------------------------------------------------------------------------------------
# What differs: legends


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
            isinstance(a, bool) or isinstance(b, bool)):
        return float(a) == float(b)
    return a == b


def field_value(run: CompareRun, name: str) -> Any:
    """The run's value of a config field; None where the field does not apply to the run
    (e.g. γ under objective H)."""
    info = _fields().get(name)
    if info is not None and not info.applies(run.config):
        return None
    return run.config.get(name)


def differing_fields(runs: Sequence[CompareRun], bookkeeping: bool = False) -> list[str]:
    """Config fields whose values differ between the ``runs`` they apply to, in schema order
    (unknown fields, e.g. of a newer version, after). Fields about where a run ran are left
    out unless ``bookkeeping``."""
    infos = _fields()
    names = list(infos) + sorted({k for r in runs for k in r.config} - set(infos))
    out = []
    for name in names:
        info = infos.get(name)
        if info is not None and not bookkeeping and info.group in _BOOKKEEPING_GROUPS:
            continue
        # Compared among the runs it applies to: γ differs only if two B runs differ in it.
        values = [v for r in runs if (v := field_value(r, name)) is not None]
        if any(not _same(values[0], v) for v in values[1:]):
            out.append(name)
    return out


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def field_label(name: str, value: Any, ascii_only: bool = False) -> str:
    """``β=4`` (``beta=4`` with ``ascii_only``)."""
    symbol = name if ascii_only else SYMBOLS.get(name, name)
    return f"{symbol}={fmt_value(value)}"


def run_labels(runs: Sequence[CompareRun], fields: Sequence[str] | None = None,
               ascii_only: bool = False) -> list[str]:
    """A label per run naming only what differs (``β=4 seed=2``); runs that no field tells
    apart are named by their names."""
    fields = differing_fields(runs) if fields is None else list(fields)
    labels = []
    for run in runs:
        parts = [field_label(name, field_value(run, name), ascii_only) for name in fields
                 if field_value(run, name) is not None]
        labels.append(" ".join(parts) or run.name)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [f"{label} ({run.name})" if counts[label] > 1 and label != run.name else label
            for label, run in zip(labels, runs, strict=True)]


# --------------------------------------------------------------------------------------------
# Groups


def field_names() -> list[str]:
    """Every config field a comparison can group by, as `bvae train` spells the options."""
    return [name.replace("_", "-") for name in _fields()]


def resolve_by(by: str | Sequence[str] | None, runs: Sequence[CompareRun]) -> tuple[str, ...]:
    """The fields to group by: ``by`` (comma-separated names, dashes or underscores; ``run``:
    every run alone), else every field that differs except the seed. An empty tuple means one
    group per run."""
    if by is None:
        return tuple(name for name in differing_fields(runs) if name != "seed")
    names = [p.strip() for p in by.split(",")] if isinstance(by, str) else list(by)
    names = [n for n in names if n]
    if names == [PER_RUN]:
        return ()
    known = set(_fields()) | {k for r in runs for k in r.config}
    out = []
    for name in names:
        key = name.replace("-", "_")
        if key not in known:
            raise ConfigError(f"--by: no config field '{name}'; use one of "
                              f"{', '.join(field_names())}, or 'run'")
        out.append(key)
    if not out:
        raise ConfigError("--by needs a config field name, e.g. --by beta")
    return tuple(dict.fromkeys(out))


def _order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


@dataclass(frozen=True)
class Group:
    """Runs that share the values of the grouping fields (one seed each, typically)."""

    key: tuple[Any, ...]
    label: str
    runs: tuple[CompareRun, ...]
    colour: int  # index into a palette: stable for a given set of runs and grouping
    fields: tuple[str, ...] = ()  # the grouping fields; () for one group per run

    @property
    def values(self) -> dict[str, Any]:
        """The grouping fields' values ({} for one group per run)."""
        return dict(zip(self.fields, self.key, strict=True)) if self.fields else {}


def group_runs(runs: Sequence[CompareRun], by: tuple[str, ...],
               ascii_only: bool = False) -> list[Group]:
    """Groups of ``runs`` sharing the values of ``by``, sorted by those values (numbers by
    size); with no fields, one group per run, labelled by what differs between the runs."""
    differing = differing_fields(runs)
    order = sorted(range(len(runs)), key=lambda i: tuple(
        _order(field_value(runs[i], f)) for f in differing) + (i,))
    if not by:
        labels = run_labels(runs, ascii_only=ascii_only)
        return [Group(key=(runs[i].id,), label=labels[i], runs=(runs[i],), colour=k)
                for k, i in enumerate(order)]
    members: dict[tuple[Any, ...], list[CompareRun]] = {}
    for run in (runs[i] for i in order):  # within a group: by what differs (e.g. the seed)
        key = tuple(field_value(run, name) for name in by)
        match = next((k for k in members if all(_same(a, b) for a, b in zip(k, key,
                                                                            strict=True))), None)
        members.setdefault(key if match is None else match, []).append(run)
    keys = sorted(members, key=lambda k: tuple(_order(v) for v in k))
    return [Group(key=key, label=" ".join(field_label(n, v, ascii_only)
                                          for n, v in zip(by, key, strict=True)),
                  runs=tuple(members[key]), colour=i, fields=by)
            for i, key in enumerate(keys)]


# --------------------------------------------------------------------------------------------
# Curves


@dataclass(frozen=True)
class Band:
    """A group's curve on a common iteration grid: mean, min and max over the runs that reach
    each point (``n`` of them)."""

    xs: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


def _grid(runs: Sequence[CompareRun], max_points: int) -> np.ndarray:
    xs = np.unique(np.concatenate([r.iters for r in runs])) if runs else np.zeros(0)
    if xs.size > max_points:
        xs = xs[np.linspace(0, xs.size - 1, max_points).round().astype(np.int64)]
    return xs


def group_band(group: Group, name: str, max_points: int = 1000) -> Band:
    """Curve ``name`` of the group's runs, each interpolated onto the union of their iterations
    (at most ``max_points``), then mean / min / max across runs at each point."""
    runs = [r for r in group.runs if r.rows and name in r.curves]
    xs = _grid(runs, max_points)
    stack = np.full((len(runs), xs.size), np.nan)
    for i, run in enumerate(runs):
        ys = run.curves[name]
        ok = np.isfinite(ys)
        if ok.sum() == 0:
            continue
        rx, ry = run.iters[ok], ys[ok]
        inside = (xs >= rx[0]) & (xs <= rx[-1])
        stack[i, inside] = np.interp(xs[inside], rx, ry)
    n = np.isfinite(stack).sum(axis=0)
    with np.errstate(invalid="ignore"):
        total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        lo = np.where(n > 0, np.min(np.where(np.isfinite(stack), stack, np.inf), axis=0,
                                    initial=np.inf), np.nan)
        hi = np.where(n > 0, np.max(np.where(np.isfinite(stack), stack, -np.inf), axis=0,
                                    initial=-np.inf), np.nan)
    return Band(xs=xs, mean=mean, lo=lo, hi=hi, n=n)


def has_curve(runs: Iterable[CompareRun], name: str) -> bool:
    """Whether any run logged a finite value of ``name`` (C only exists under objective B)."""
    return any(r.final(name) is not None for r in runs)
