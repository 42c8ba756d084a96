"""What the screens show, read from run directories (no Textual here, so it is easy to test).

Everything comes through :mod:`bvae_tui.engine.runs.store` (the runs table from the same
``Run.summary()`` as `bvae runs`); this module only gathers and formats. The pollers keep small
caches (files parsed again only when they change, an incremental metrics reader per run) so
refreshing the runs table every second stays cheap even with long metrics files."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bvae_tui.engine.analysis.mi_matrix import MIMatrix
from bvae_tui.engine.objective_info import OBJECTIVE_INFO, TERM_FIELDS, objective_label
from bvae_tui.engine.runs.files import FileCache, stat_key
from bvae_tui.engine.runs.records import MetricsRow, RunSummary, Status
from bvae_tui.engine.runs.store import MetricsTail, Run, list_runs

SCORE_NAMES = (("betavae", "BV"), ("factorvae", "FV"), ("mig", "MIG"), ("dci", "DCI"),
               ("udr", "UDR"))
# The objectives' own metrics fields and how the monitor names them.
TERM_LABELS = {"mi": "MI", "tc": "TC", "dw_kl": "dim-KL", "disc_acc": "D acc",
               "dip_od": "off-diag", "dip_d": "diag"}


def objective_terms(config: dict[str, Any]) -> tuple[str, ...]:
    """The metrics fields of a run's own objective (none for H and B, or an unknown one)."""
    info = OBJECTIVE_INFO.get(config.get("objective"))  # type: ignore[arg-type]
    return info.terms if info else ()


# --------------------------------------------------------------------------------------------
# Formatting helpers


def fmt_num(value: Any, digits: int = 4) -> str:
    """A compact number: 3 significant-ish digits, '-' for missing or non-finite values."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if not math.isfinite(value):
        return str(value)
    mag = abs(value)
    if mag >= 10 ** digits:
        return f"{value:.3g}"
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 1:
        return f"{value:.2f}"
    if mag == 0:
        return "0"
    return f"{value:.3f}" if mag >= 0.001 else f"{value:.1e}"


def fmt_duration(seconds: float | None) -> str:
    """``1:02:03`` style, days as ``2d 03:04``; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}"
    return f"{hours}:{minutes:02d}:{s:02d}" if hours else f"{minutes}:{s:02d}"


def fmt_time(stamp: float | None, now: float | None = None) -> str:
    """Clock time today, else month-day and time."""
    if not isinstance(stamp, (int, float)):
        return "-"
    now = time.time() if now is None else now
    lt, ln = time.localtime(stamp), time.localtime(now)
    if lt[:3] == ln[:3]:
        return time.strftime("%H:%M", lt)
    return time.strftime("%m-%d %H:%M", lt)


def fmt_scores(scores: dict[str, Any] | None) -> str:
    """``BV .85 FV .78 MIG .31`` from eval.json's ``scores``; '' when there are none."""
    if not scores:
        return ""
    parts = []
    for key, short in SCORE_NAMES:
        value = scores.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{short} {value:.2f}")
    return " ".join(parts)


def objective_text(config: dict[str, Any]) -> str:
    """``H β4``, ``B γ100 C20`` or ``factor γ40`` from a config dict."""
    return objective_label(config)


# --------------------------------------------------------------------------------------------
# Runs table


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table, as plain values."""

    id: str
    path: str
    name: str
    state: str
    error: str  # the note: what went wrong, or what an active run is doing
    dataset: str
    source: str  # real | procedural | files | '' (not known)
    objective: str
    iteration: int
    total: int
    loss: float | None
    kl: float | None
    scores: str
    started: float | None
    duration: float | None
    device: str
    sweep: str = ""  # id of the sweep it is a member of

    @classmethod
    def from_summary(cls, s: RunSummary, source: str = "") -> RunRow:
        return cls(id=s.id, path=s.path, name=s.name, state=s.state, error=s.note,
                   dataset=s.dataset or "?", source=source,
                   objective=objective_text(s.config) if s.config else "?",
                   iteration=s.iteration, total=s.total or 0, loss=s.loss, kl=s.kl,
                   scores=fmt_scores(s.scores), started=s.started or s.created,
                   duration=s.duration, device=s.device or "", sweep=s.sweep or "")

    @property
    def progress(self) -> str:
        return f"{self.iteration}/{self.total}" if self.total else str(self.iteration)

    def matches(self, text: str) -> bool:
        text = text.lower()
        hay = " ".join((self.id, self.name, self.state, self.dataset, self.source,
                        self.objective, self.device, self.error)).lower()
        return all(word in hay for word in text.split())


class DatasetSources:
    """Which source (real / procedural / files) each prepared dataset cache holds, cached.

    Asking the datasets package costs a few file reads; the answer changes only when someone
    prepares data, so a minute-long cache is plenty.
    """

    def __init__(self, ttl: float = 60.0):
        self.ttl = ttl
        self._cache: dict[tuple[str, str | None], tuple[float, str]] = {}

    def get(self, name: str, data_dir: str | None) -> str:
        key = (name, data_dir)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        source = ""
        try:
            from bvae_tui.datasets.loader import dataset_status

            source = dataset_status(name, data_dir).get("source") or ""
        except Exception:  # noqa: BLE001 - a dataset we cannot inspect just shows no source
            source = ""
        self._cache[key] = (now, source)
        return source


class RunsPoller:
    """Builds :class:`RunRow` for every run under a root, reading only what changed."""

    def __init__(self, root: Path, sources: DatasetSources | None = None):
        self.root = Path(root)
        self.sources = sources or DatasetSources()
        self._caches: dict[str, FileCache] = {}

    def poll(self) -> list[RunRow]:
        runs = list_runs(self.root)
        alive = {r.id for r in runs}
        for gone in set(self._caches) - alive:
            del self._caches[gone]
        rows = []
        for run in runs:
            try:
                summary = run.summary(self._caches.setdefault(run.id, FileCache()))
            except FileNotFoundError:  # deleted between listing and reading
                continue
            except Exception as exc:  # noqa: BLE001 - one damaged run must not hide the others
                rows.append(broken_row(run, f"cannot read this run ({exc})"))
                continue
            # Before its worker has loaded the data, the prepared cache says which source it is.
            source = summary.dataset_source or (
                self.sources.get(summary.dataset, summary.data_dir) if summary.dataset else "")
            rows.append(RunRow.from_summary(summary, source))
        return rows


def broken_row(run: Run, error: str) -> RunRow:
    """A table row for a run whose files cannot be made sense of."""
    return RunRow(id=run.id, path=str(run.path), name=run.id, state="failed", error=error,
                  dataset="?", source="", objective="?", iteration=0, total=0, loss=None,
                  kl=None, scores="", started=None, duration=None, device="")


# --------------------------------------------------------------------------------------------
# Monitor


@dataclass
class MetricsHistory:
    """The scalar curves of one run plus its latest row, bounded in memory.

    Long runs with a short log interval would hold millions of rows; past ``max_points`` every
    other point is dropped (the plots draw a few hundred columns at most anyway).
    """

    max_points: int = 20_000
    iters: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    recon: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    c: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TERM_FIELDS})
    last: MetricsRow | None = None
    rows_seen: int = 0
    _recent: list[tuple[float, float]] = field(default_factory=list)  # (elapsed, iter)

    def extend(self, rows: list[MetricsRow]) -> None:
        for row in rows:
            if row.iter is None:
                continue
            self.rows_seen += 1
            self.iters.append(float(row.iter))
            self.loss.append(_nan(row.loss))
            self.recon.append(_nan(row.recon))
            self.kl.append(_nan(row.kl))
            self.c.append(_nan(row.c))
            for name, values in self.terms.items():
                values.append(_nan(getattr(row, name)))
            self.last = row
            if row.elapsed is not None:
                self._recent.append((row.elapsed, float(row.iter)))
                del self._recent[:-20]
        if len(self.iters) > self.max_points:
            keep = slice(0, None, 2) if len(self.iters) % 2 else slice(1, None, 2)
            for name in ("iters", "loss", "recon", "kl", "c"):
                setattr(self, name, getattr(self, name)[keep])
            self.terms = {name: values[keep] for name, values in self.terms.items()}

    def iter_rate(self) -> float | None:
        """Iterations per second over the last rows (None until two rows are in)."""
        if len(self._recent) < 2:
            return None
        (t0, i0), (t1, i1) = self._recent[0], self._recent[-1]
        if t1 <= t0 or i1 <= i0:
            return None
        return (i1 - i0) / (t1 - t0)

    def has_c(self) -> bool:
        return any(math.isfinite(v) for v in self.c[-5:])

    def snapshot(self) -> MetricsHistory:
        """A copy the UI thread can own while the watcher keeps appending."""
        copy = MetricsHistory(self.max_points, list(self.iters), list(self.loss),
                              list(self.recon), list(self.kl), list(self.c),
                              {name: list(values) for name, values in self.terms.items()},
                              self.last, self.rows_seen)
        copy._recent = list(self._recent)
        return copy


def _nan(value: float | None) -> float:
    return value if value is not None else math.nan


def eta_seconds(history: MetricsHistory, iteration: int, total: int) -> float | None:
    rate = history.iter_rate()
    if not rate or total <= 0 or iteration >= total:
        return None
    return (total - iteration) / rate


@dataclass
class WatchEvents:
    """What changed in a run directory since the last poll (None: unchanged)."""

    status: Status | None = None
    metrics: MetricsHistory | None = None
    preview: dict[str, Path] | None = None  # kind -> png path, on any change
    log: list[str] | None = None
    scores: dict[str, float] | None = None
    mi: MIMatrix | None = None  # with scores: the evaluation's information matrix, if any
    gone: bool = False

    def any(self) -> bool:
        return self.gone or any(v is not None for v in (self.status, self.metrics, self.preview,
                                                        self.log, self.scores))


class RunWatcher:
    """Tails one run directory: status, metrics, previews, worker log and eval results."""

    def __init__(self, run: Run, log_lines: int = 200, status_every: float = 1.0):
        self.run = run
        self.log_lines = log_lines
        self.status_every = status_every
        self.history = MetricsHistory()
        self._tail = MetricsTail(run.metrics_path)
        self._status_key: Any = None
        self._status_at = 0.0
        self._last_status: Status | None = None
        self._preview_key: Any = None
        self._log_key: Any = None
        self._eval_key: Any = None
        self._gone = False

    def poll(self) -> WatchEvents:
        ev = WatchEvents()
        if self._gone:
            return ev
        if not self.run.path.is_dir():
            self._gone = ev.gone = True
            return ev
        # Status: on any change of status.json, and every second anyway, because a worker that
        # dies writes nothing and only the liveness check turns it into 'lost'.
        skey = stat_key(self.run.status_path)
        now = time.monotonic()
        if skey != self._status_key or now - self._status_at >= self.status_every:
            status = self.run.status()
            if status != self._last_status:
                ev.status = self._last_status = status
            self._status_key, self._status_at = skey, now
        rows = self._tail.read_new()
        if rows:
            self.history.extend(rows)
            ev.metrics = self.history.snapshot()
        previews = self.run.preview_paths()
        pkey = tuple(stat_key(path) for path in previews.values())
        if pkey != self._preview_key:
            self._preview_key = pkey
            ev.preview = {kind: path for kind, path in previews.items() if path.exists()}
        lkey = stat_key(self.run.log_path)
        if lkey != self._log_key:
            self._log_key = lkey
            ev.log = self.run.log_tail(self.log_lines)
        ekey = stat_key(self.run.eval_path)
        if ekey != self._eval_key:
            self._eval_key = ekey
            result = self.run.eval_results()
            ev.scores = result.scores if result else {}
            ev.mi = MIMatrix.from_result(result) if result else None
        return ev
