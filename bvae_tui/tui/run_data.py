"""What the screens show, read from run directories (no Textual here, so it is easy to test).

Everything comes through :mod:`bvae_tui.engine.runs.store`; this module only gathers and formats.
The pollers keep small caches (config by mtime, an incremental metrics reader per run) so refreshing
the runs table every second stays cheap even with long metrics files."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bvae_tui.engine.runs.store import MetricsTail, Run, last_row, list_runs, read_json

STATE_STYLES = {
    "queued": "cyan",
    "running": "bold green",
    "finished": "blue",
    "stopped": "yellow",
    "failed": "bold red",
    "lost": "bold magenta",
}
SCORE_NAMES = (("betavae", "BV"), ("factorvae", "FV"), ("mig", "MIG"))


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
    """``H β4`` or ``B γ100 C20`` from a config dict."""
    if config.get("objective") == "B":
        return f"B γ{config.get('gamma', 0):g} C{config.get('c_max', 0):g}"
    beta = config.get("beta")
    return f"H β{beta:g}" if isinstance(beta, (int, float)) else "H"


# --------------------------------------------------------------------------------------------
# Runs table


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table, as plain values."""

    id: str
    path: str
    name: str
    state: str
    error: str
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

    @property
    def progress(self) -> str:
        return f"{self.iteration}/{self.total}" if self.total else str(self.iteration)

    def matches(self, text: str) -> bool:
        text = text.lower()
        hay = " ".join((self.id, self.name, self.state, self.dataset, self.source,
                        self.objective, self.device, self.error)).lower()
        return all(word in hay for word in text.split())


@dataclass
class _RunCache:
    config_mtime: float = -1.0
    config: dict[str, Any] = field(default_factory=dict)
    config_error: str = ""
    name: str = ""
    data_dir: str | None = None
    dataset_source: str = ""
    created: float | None = None
    metrics_key: Any = None
    last_row: dict[str, Any] | None = None
    eval_mtime: float = -1.0
    scores: str = ""


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


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
        self._cache: dict[str, _RunCache] = {}

    def poll(self) -> list[RunRow]:
        runs = list_runs(self.root)
        alive = {r.id for r in runs}
        for gone in set(self._cache) - alive:
            del self._cache[gone]
        rows = []
        for run in runs:
            try:
                rows.append(self._row(run))
            except FileNotFoundError:  # deleted between listing and reading
                continue
            except Exception as exc:  # noqa: BLE001 - one damaged run must not hide the others
                rows.append(broken_row(run, f"cannot read this run ({exc})"))
        return rows

    def _row(self, run: Run) -> RunRow:
        cache = self._cache.setdefault(run.id, _RunCache())
        mtime = _mtime(run.config_path)
        if mtime != cache.config_mtime:
            cache.config_mtime = mtime if mtime is not None else -1.0
            record = read_json(run.config_path)
            if record is None or not isinstance(record.get("config"), dict):
                cache.config, cache.config_error = {}, "config.json is missing or corrupt"
                cache.name, cache.data_dir, cache.created = run.id, None, None
            else:
                cache.config, cache.config_error = record["config"], ""
                cache.name = str(record.get("name") or run.id)
                cache.data_dir = record.get("data_dir")
                # what the worker actually loaded (written at start-up), if it has started
                cache.dataset_source = str(record.get("dataset_source") or "")
                created = record.get("created")
                cache.created = created if isinstance(created, (int, float)) else None
        mkey = _stat_key(run.metrics_path)
        if mkey != cache.metrics_key:
            cache.metrics_key = mkey
            cache.last_row = last_row(run.metrics_path) if mkey else None
        emtime = _mtime(run.eval_path)
        if emtime != cache.eval_mtime:
            cache.eval_mtime = emtime if emtime is not None else -1.0
            data = run.eval_results() or {}
            scores = data.get("scores")
            cache.scores = fmt_scores(scores if isinstance(scores, dict) else None)

        status = run.status()
        state = status.get("state", "failed")
        error = status.get("error") or cache.config_error or ""
        phase = status.get("phase")
        if state in ("queued", "running") and phase and phase != "training" and not error:
            error = str(phase)  # e.g. 'loading data', 'evaluating': shown in the note column
        if state == "finished" and status.get("eval_error"):
            error = f"evaluation failed: {status['eval_error']}"
        cfg = cache.config
        dataset = str(cfg.get("dataset", "?"))
        source = cache.dataset_source or (
            self.sources.get(dataset, cache.data_dir) if cfg else "")
        started = _num(status.get("started")) or cache.created
        end = time.time() if state == "running" else (_num(status.get("updated"))
                                                       or _num(status.get("heartbeat")))
        duration = (end - started) if (started and end and _num(status.get("started"))) else None
        last = cache.last_row or {}
        iteration = status.get("iteration")
        if not isinstance(iteration, int):
            iteration = int(last.get("iter", 0) or 0)
        total = status.get("total") if isinstance(status.get("total"), int) else int(
            cfg.get("iterations", 0) or 0)
        return RunRow(
            id=run.id,
            path=str(run.path),
            name=cache.name,
            state=state,
            error=str(error) if state != "finished" or cache.config_error
            or status.get("eval_error") else "",
            dataset=dataset,
            source=source,
            objective=objective_text(cfg) if cfg else "?",
            iteration=iteration,
            total=total,
            loss=_num(last.get("loss")),
            kl=_num(last.get("kl")),
            scores=cache.scores,
            started=started,
            duration=duration,
            device=str(status.get("device") or cfg.get("device") or ""),
        )


def broken_row(run: Run, error: str) -> RunRow:
    """A table row for a run whose files cannot be made sense of."""
    return RunRow(id=run.id, path=str(run.path), name=run.id, state="failed", error=error,
                  dataset="?", source="", objective="?", iteration=0, total=0, loss=None,
                  kl=None, scores="", started=None, duration=None, device="")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
    last: dict[str, Any] | None = None
    rows_seen: int = 0
    _recent: list[tuple[float, float]] = field(default_factory=list)  # (elapsed, iter)

    def extend(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            it = _num(row.get("iter"))
            if it is None:
                continue
            self.rows_seen += 1
            self.iters.append(it)
            self.loss.append(_nan(row.get("loss")))
            self.recon.append(_nan(row.get("recon")))
            self.kl.append(_nan(row.get("kl")))
            self.c.append(_nan(row.get("c")))
            self.last = row
            elapsed = _num(row.get("elapsed"))
            if elapsed is not None:
                self._recent.append((elapsed, it))
                del self._recent[:-20]
        if len(self.iters) > self.max_points:
            for name in ("iters", "loss", "recon", "kl", "c"):
                values = getattr(self, name)
                setattr(self, name, values[::2] if len(values) % 2 else values[1::2])

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
                              list(self.recon), list(self.kl), list(self.c), self.last,
                              self.rows_seen)
        copy._recent = list(self._recent)
        return copy


def _nan(value: Any) -> float:
    num = _num(value)
    return num if num is not None else math.nan


def eta_seconds(history: MetricsHistory, iteration: int, total: int) -> float | None:
    rate = history.iter_rate()
    if not rate or total <= 0 or iteration >= total:
        return None
    return (total - iteration) / rate


@dataclass
class WatchEvents:
    """What changed in a run directory since the last poll (None: unchanged)."""

    status: dict[str, Any] | None = None
    metrics: MetricsHistory | None = None
    preview: dict[str, Path] | None = None  # kind -> png path, on any change
    log: list[str] | None = None
    scores: dict[str, Any] | None = None
    gone: bool = False

    def any(self) -> bool:
        return self.gone or any(v is not None for v in (self.status, self.metrics, self.preview,
                                                        self.log, self.scores))


PREVIEW_FILES = {"traversal": "traversal.png", "recon": "recon.png"}


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
        self._last_status: dict[str, Any] | None = None
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
        try:
            st = os.stat(self.run.status_path)
            skey: Any = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            skey = None
        now = time.monotonic()
        if skey != self._status_key or now - self._status_at >= self.status_every:
            try:
                status = self.run.status()
            except Exception as exc:  # noqa: BLE001 - e.g. a pid that is not a number
                status = {"state": "failed", "error": f"status.json is unreadable ({exc})"}
            if status != self._last_status:
                ev.status = self._last_status = status
            self._status_key, self._status_at = skey, now
        rows = self._tail.read_new()
        if rows:
            self.history.extend(rows)
            ev.metrics = self.history.snapshot()
        pkey = tuple(_stat_key(self.run.previews_dir / f) for f in PREVIEW_FILES.values())
        if pkey != self._preview_key:
            self._preview_key = pkey
            ev.preview = {kind: self.run.previews_dir / f for kind, f in PREVIEW_FILES.items()
                          if (self.run.previews_dir / f).exists()}
        lkey = _stat_key(self.run.log_path)
        if lkey != self._log_key:
            self._log_key = lkey
            ev.log = self.run.log_tail(self.log_lines)
        ekey = _stat_key(self.run.eval_path)
        if ekey != self._eval_key:
            self._eval_key = ekey
            data = self.run.eval_results() or {}
            scores = data.get("scores")
            ev.scores = scores if isinstance(scores, dict) else {}
        return ev


def _stat_key(path: Path) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
