"""Reading runs for a comparison: each run's config, curves, probes, last row and scores.

:class:`RunReader` follows one run directory (new metrics and probe rows only, eval.json and the
config when they change), :class:`RunsFollower` a fixed list of them (the TUI's compare screen),
and :func:`load_runs` reads them once (`bvae compare`). Everything goes through the run store's
typed records.

Probe curves (probes.jsonl, `--probe-every`) are the probed scores over iterations: ``mig``, and
per factor ``mi/<factor>``, the share of the factor (MI / H) its best latent carries. A run
without probes has none of them: it is left out of their bands, never drawn as zeros.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.engine.config import schema
from bvae_tui.engine.runs.files import stat_key
from bvae_tui.engine.runs.records import EvalResult, MetricsRow, ProbeRow
from bvae_tui.engine.runs.store import MetricsTail, ProbesTail, Run

ACTIVE_KL = 0.1  # nats; a latent below this carries next to nothing about the input
CURVES = ("loss", "recon", "kl", "c")
PROBE_MIG = "mig"
FACTOR_PREFIX = "mi/"  # "mi/shape": the share of shape its best latent carries


def factor_score(factor: str) -> str:
    """The probe curve of ``factor``: the share of it (MI / H) its best latent carries."""
    return FACTOR_PREFIX + factor


def probe_label(name: str) -> str:
    """How a face names a probe curve: ``MIG``, ``shape (best MI/H)``."""
    if name.startswith(FACTOR_PREFIX):
        return f"{name[len(FACTOR_PREFIX):]} (best MI/H)"
    return "MIG" if name == PROBE_MIG else name


def probe_values(row: ProbeRow) -> dict[str, float]:
    """A probe row's scores: MIG and each factor's best share; a damaged part (a matrix of the
    wrong width, a non-finite value) gives nan for what it touches, never a made-up number."""
    out = {PROBE_MIG: _finite(row.mig)}
    factors = row.factors or []
    mi = row.mi or []
    whole = bool(mi) and all(len(r) == len(factors) for r in mi)
    for k, factor in enumerate(factors):
        column = [_finite(r[k]) for r in mi] if whole else []
        out[factor_score(factor)] = max(column) if column and all(
            math.isfinite(v) for v in column) else math.nan
    return out


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


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
    probe_iters: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probe_curves: dict[str, np.ndarray] = field(default_factory=dict)  # probe name -> values
    _finals: dict[str, float | None] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return int(self.iters.size)

    @property
    def probed(self) -> bool:
        """Whether the run has any probe row (probes.jsonl)."""
        return bool(self.probe_iters.size)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) of a metrics curve or a probe curve; empty when the run has
        none of it."""
        if name in self.curves:
            return self.iters, self.curves[name]
        if name in self.probe_curves:
            return self.probe_iters, self.probe_curves[name]
        return np.zeros(0), np.zeros(0)

    @property
    def scores(self) -> dict[str, float]:
        return dict(self.eval.scores) if self.eval else {}

    @property
    def evaluated(self) -> bool:
        return bool(self.eval and self.eval.scores)

    def final(self, name: str) -> float | None:
        """The last finite value of curve ``name``."""
        if name not in self._finals:
            values = self.curves.get(name)
            finite = values[np.isfinite(values)] if values is not None else np.zeros(0)
            self._finals[name] = float(finite[-1]) if finite.size else None
        return self._finals[name]

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
    return {**{info.name: info.default for info in schema()}, **config}


class RunReader:
    """Follows one run directory: new metrics rows only, eval.json and config when they change."""

    def __init__(self, run: Run):
        self.run = run
        self._tail = MetricsTail(run.metrics_path)
        self._columns: dict[str, list[float]] = {name: [] for name in ("iter", *CURVES)}
        self._last: MetricsRow | None = None
        self._probes_tail = ProbesTail(run.probes_path)
        self._probes: dict[int, dict[str, float]] = {}  # probe iteration -> its scores
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
        probes = self._poll_probes()
        keys = (stat_key(self.run.config_path), stat_key(self.run.status_path),
                stat_key(self.run.eval_path))
        if not rows and not probes and keys == self._keys and self.snapshot is not None:
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
            last=self._last, eval=self._eval, **self._probe_arrays())
        return True

    def _poll_probes(self) -> bool:
        """Read new probe rows; True when any came. A row at or before the last one read means
        the file was rewritten (a resume dropped the rows past its checkpoint): start over."""
        rows = [r for r in self._probes_tail.read_new() if r.iter is not None]
        if rows and self._probes and int(rows[0].iter or 0) <= max(self._probes):
            self._probes.clear()
        for row in rows:
            self._probes[int(row.iter or 0)] = probe_values(row)
        return bool(rows)

    def _probe_arrays(self) -> dict[str, Any]:
        iters = sorted(self._probes)
        names = list(dict.fromkeys(n for i in iters for n in self._probes[i]))
        return {"probe_iters": np.asarray(iters, dtype=np.float64),
                "probe_curves": {n: np.asarray([self._probes[i].get(n, math.nan) for i in iters],
                                               dtype=np.float64) for n in names}}


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

    def poll(self, progress: Callable[[list[CompareRun]], None] | None = None,
             every: float = 0.5) -> list[CompareRun] | None:
        """The runs' data when anything changed since the last poll, else None. A run deleted
        meanwhile keeps its last data. A long read (the first one, of many long runs) hands
        what it has read so far to ``progress`` every ``every`` seconds."""
        changed = False
        shown = time.monotonic()
        for reader in self.readers:
            if reader.run.path.is_dir():
                changed = reader.poll() or changed
            if progress is not None and time.monotonic() - shown > every:
                progress(self._snapshots())
                shown = time.monotonic()
        return self._snapshots() if changed else None

    def _snapshots(self) -> list[CompareRun]:
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
