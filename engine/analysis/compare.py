"""Comparing runs: what differs between them, groups over config fields, and their curves.

A comparison takes any list of runs (picked by hand, by a filter, or the members of a sweep) and
answers "did β = 8 do better than β = 4, across seeds?": the config fields whose values differ
name each run (``β=4 seed=2``), the runs are grouped over one or more of those fields (by default
all that differ except the seed, so each group holds the seeds of one setting), and each group's
curves are aligned on one iteration grid to give a mean line and a min-max band. Reading the
runs is :mod:`bvae_tui.engine.analysis.compare_runs`; score tables are
:mod:`bvae_tui.engine.analysis.compare_table`.

Headless: `bvae compare`, `bvae export csv|tensorboard` and the TUI's compare screen share it.
Runs are read through the run store's typed records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.compare_runs import PROBE_MIG, CompareRun
from bvae_tui.engine.config import GROUP_RUN, GROUP_SPEED, FieldInfo, schema
from bvae_tui.engine.errors import ConfigError

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


@cache
def _fields() -> dict[str, FieldInfo]:
    """The schema by field name (read-only)."""
    return {info.name: info for info in schema()}


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


def _grid(axes: Sequence[np.ndarray], max_points: int) -> np.ndarray:
    """The iterations of a band: the runs' own when they agree (the seeds of one setting), else
    their union; at most ``max_points`` of them."""
    if not axes:
        return np.zeros(0)
    first = axes[0]
    if all(np.array_equal(xs, first) for xs in axes[1:]):
        xs = first
    else:
        xs = np.unique(np.concatenate(list(axes)))
    if xs.size > max_points:
        xs = xs[np.linspace(0, xs.size - 1, max_points).round().astype(np.int64)]
    return xs


def group_band(group: Group, name: str, max_points: int = 1000) -> Band:
    """Curve ``name`` (a metrics curve, or a probe curve such as ``mig``) of the group's runs,
    each interpolated onto the union of their iterations (at most ``max_points``), then mean /
    min / max across runs at each point. Runs without the curve (e.g. without probes) are left
    out, so ``n`` counts only the runs that have it, and a group of none gets an empty band."""
    series = [s for s in (r.series(name) for r in group.runs) if s[0].size]
    xs = _grid([s[0] for s in series], max_points)
    stack = np.full((len(series), xs.size), np.nan)
    for i, (run_xs, ys) in enumerate(series):
        ok = np.isfinite(ys)
        if ok.sum() == 0:
            continue
        rx, ry = run_xs[ok], ys[ok]
        inside = (xs >= rx[0]) & (xs <= rx[-1])
        stack[i, inside] = np.interp(xs[inside], rx, ry)
    n = np.isfinite(stack).sum(axis=0)
    total = np.nansum(stack, axis=0)
    mean = np.divide(total, n, out=np.full(xs.size, np.nan), where=n > 0)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduce(stack, axis=0) if len(series) else np.zeros(0)  # fmin skips nan
        hi = np.fmax.reduce(stack, axis=0) if len(series) else np.zeros(0)
    return Band(xs=xs, mean=mean, lo=lo, hi=hi, n=n)


def has_curve(runs: Iterable[CompareRun], name: str) -> bool:
    """Whether any run logged a finite value of ``name`` (C only exists under objective B)."""
    return any(r.final(name) is not None for r in runs)


def probe_scores(runs: Iterable[CompareRun]) -> list[str]:
    """The probe curves any of ``runs`` has: ``mig`` first, then each factor's ``mi/<factor>``
    in the order the probes name them."""
    names = dict.fromkeys(n for r in runs for n in r.probe_curves
                          if np.isfinite(r.probe_curves[n]).any())
    return sorted(names, key=lambda n: n != PROBE_MIG)


def without_probes(groups: Iterable[Group]) -> list[Group]:
    """The groups none of whose runs has a probe (shown as such, never as zeros)."""
    return [g for g in groups if not any(r.probed for r in g.runs)]
