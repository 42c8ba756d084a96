"""The run store: run directories, and the only code that reads or writes the files in them.

A run is a directory ``<runs root>/<run id>/``. What each file is called and holds is in
:mod:`bvae_tui.engine.runs.records` (and docs/run-directory.md, generated from it); the worker
writes through this module and both faces read through it. It imports neither torch nor anything
heavy, so listing runs is fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from bvae_tui.engine.atomic import share_like_open
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.objective_info import objective_label
from bvae_tui.engine.runs.eval_progress import progress_text, read_job, with_liveness
from bvae_tui.engine.runs.files import (
    FileCache,
    JsonLinesTail,
    open_regular,
    read_json,
    write_json_atomic,
)
from bvae_tui.engine.runs.guard import NOFOLLOW, check_record_dir, is_link, valid_id
from bvae_tui.engine.runs.lock import (
    RunLock,
    RunLocked,
    check_writable,
    lock_holder,
    write_error,
)
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.readers import (
    as_int,
    as_str,
    checked_record,
    config_problem,
    last_row,
    read_eval,
    read_record,
)
from bvae_tui.engine.runs.records import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVAL_FILE,
    EVAL_JOB_FILE,
    EVAL_LOCK_FILE,
    EXPORTS_DIR,
    LAST_CHECKPOINT,
    LOG_FILE,
    METRICS_FILE,
    PREVIEW_FILES,
    PREVIEWS_DIR,
    PREVIOUS_CHECKPOINT,
    PROBES_FILE,
    STATES,
    STATUS_FILE,
    EvalResult,
    MetricsRow,
    ProbeRow,
    RunRecord,
    RunSummary,
    Status,
)
from bvae_tui.engine.runs.refs import match_ref

T = TypeVar("T")
TRUNCATE_TEMP = f".{METRICS_FILE}.tmp"  # metrics.jsonl being rewritten by a resume
PROBES_TEMP = f".{PROBES_FILE}.tmp"  # probes.jsonl being rewritten by a resume
QUEUED_GRACE_S = 60.0  # a new run without a worker pid yet is 'queued', not 'lost', this long
# A worker on another machine without a heartbeat for this long is 'lost' (loading data and the
# evaluation at the end write none, so this is generous).
REMOTE_STALE_S = 900.0
# A run directory holds one of these (a damaged run may have lost its config.json).
RUN_RECORDS = (CONFIG_FILE, STATUS_FILE)
DELETE_FIX = "its owner, or anyone with a writable mount of it, can delete it"


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """The runs root: ``--runs-dir``, else ``$BVAE_RUNS_DIR``, else ``./runs``."""
    chosen = runs_dir or os.environ.get("BVAE_RUNS_DIR") or "runs"
    return Path(chosen).expanduser().resolve()


def slug(text: str) -> str:
    slug = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", text)).strip("-.")
    return slug[:40] or "run"


def default_name(config: TrainConfig) -> str:
    """A readable default run name, e.g. ``dsprites-H-b4``, ``dsprites-B-g100-c20`` or
    ``dsprites-factor-g40``."""
    data = config.dataset
    if data.startswith("folder:"):
        data = data.split(":", 1)[0]
    return f"{data}-{objective_label(config.to_dict(), ascii=True)}"


class Run:
    """One run directory. Cheap to construct; every accessor reads from disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    # Files -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def probes_path(self) -> Path:
        return self.path / PROBES_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

    @property
    def previous_checkpoint(self) -> Path:
        return self.checkpoint_dir / PREVIOUS_CHECKPOINT

    @property
    def previews_dir(self) -> Path:
        return self.path / PREVIEWS_DIR

    def preview_path(self, kind: str) -> Path:
        """The live preview PNG of ``kind`` (``traversal`` or ``recon``)."""
        return self.previews_dir / PREVIEW_FILES[kind]

    def preview_paths(self) -> dict[str, Path]:
        return {kind: self.preview_path(kind) for kind in PREVIEW_FILES}

    @property
    def exports_dir(self) -> Path:
        return self.path / EXPORTS_DIR

    # Config -----------------------------------------------------------------------------------
    def record(self) -> RunRecord:
        """config.json as written at creation and completed by the worker."""
        record = read_record(self.config_path)
        if record is None:
            raise RunError(f"run {self.id}: {CONFIG_FILE} is missing or corrupt; "
                           f"delete the run with 'bvae runs rm {self.id}'")
        return record

    def update_record(self, **changes: Any) -> None:
        """Add facts learnt at start-up (e.g. which dSprites was used) to config.json."""
        write_json_atomic(self.config_path,
                          dataclasses.replace(self.record(), **changes).to_dict())

    @property
    def config(self) -> TrainConfig:
        """The run's validated config; a bad value is a :class:`RunError` that says it came
        from config.json (not from an option of the command that read it)."""
        values = self.record().config
        try:
            return TrainConfig.from_dict(values).validate()
        except (ConfigError, TypeError) as exc:
            raise RunError(f"run {self.id}: its {CONFIG_FILE} has {config_problem(exc, values)}"
                           f"; fix it in {self.config_path} or start a new run") from None

    @property
    def name(self) -> str:
        record = read_record(self.config_path)
        return (record.name if record else None) or self.id

    @property
    def data_dir(self) -> str | None:
        record = read_record(self.config_path)
        return record.data_dir if record else None

    # Status -----------------------------------------------------------------------------------
    def raw_status(self) -> Status:
        """status.json as written, or a ``failed`` placeholder when it is missing or corrupt."""
        data = read_json(self.status_path)
        status = Status.from_dict(data)
        if data is None or status.state not in STATES:
            return Status(state="failed", error=f"{STATUS_FILE} is missing or corrupt")
        return status

    def status(self) -> Status:
        """The status with ``lost`` worked out: active on disk but no live worker behind it.

        A queued run without a worker pid is waiting: just created, or queued in a sweep (its
        scheduler or Slurm starts it when a slot frees). A worker on another machine (a
        cluster node) cannot be looked up by pid; it is alive while its heartbeat is fresh.
        """
        status = self.raw_status()
        if status.state == "queued" and not status.pid and (
                status.job or time.time() - (status.updated or 0.0) < QUEUED_GRACE_S
                or self._in_sweep()):
            return status
        if status.active and not self._worker_alive(status):
            return dataclasses.replace(
                status, state="lost", error=f"worker (pid {status.pid}) is gone; "
                f"'bvae resume {self.id}' continues from the last checkpoint")
        return status

    def _in_sweep(self) -> bool:
        record = read_record(self.config_path)
        return record is not None and record.sweep is not None

    @staticmethod
    def _worker_alive(status: Status) -> bool:
        if status.host and status.host != socket.gethostname():
            beat = status.heartbeat or status.updated or 0.0
            return time.time() - beat < REMOTE_STALE_S
        return worker_alive(status.pid, status.pid_start)

    @property
    def state(self) -> str:
        return self.status().state or "failed"

    def write_status(self, **changes: Any) -> Status:
        """Merge ``changes`` (:class:`Status` fields) into status.json atomically; stamp
        ``updated``. Keys this version does not know are kept; an unknown field name or a value
        of the wrong type is a TypeError (a bug in the caller, not a user error)."""
        current = Status.from_dict(read_json(self.status_path))
        status = dataclasses.replace(current, **changes, updated=time.time())
        write_json_atomic(self.status_path, status.to_dict())
        return status

    # Metrics and results -----------------------------------------------------------------------
    def metrics(self) -> list[MetricsRow]:
        """Every complete row of metrics.jsonl (a torn last line is ignored)."""
        return MetricsTail(self.metrics_path).read_new()

    def last_metrics(self) -> MetricsRow | None:
        return last_row(self.metrics_path)

    def truncate_metrics(self, iteration: int) -> None:
        """Drop rows after ``iteration`` (written after the checkpoint a resume starts from).

        The file is replaced atomically; readers (:class:`MetricsTail`) see the new inode and
        read it again from the start.
        """
        if self.metrics_path.exists():
            _rewrite_lines(self.metrics_path, TRUNCATE_TEMP,
                           [r.to_line() for r in self.metrics() if (r.iter or 0) <= iteration])

    def probes(self) -> list[ProbeRow]:
        """Every complete row of probes.jsonl (a torn last line is ignored)."""
        return ProbesTail(self.probes_path).read_new()

    def truncate_probes(self, iteration: int) -> None:
        """Drop probe rows after ``iteration``, as :meth:`truncate_metrics` does metrics rows:
        a resumed run probes those steps again."""
        if self.probes_path.exists():
            _rewrite_lines(self.probes_path, PROBES_TEMP,
                           [r.to_line() for r in self.probes() if (r.iter or 0) <= iteration])

    def eval_results(self) -> EvalResult | None:
        return read_eval(self.eval_path)

    def write_eval(self, result: EvalResult) -> None:
        write_json_atomic(self.eval_path, result.to_dict())

    def log_tail(self, lines: int = 20) -> list[str]:
        fh = open_regular(self.log_path)
        if fh is None:
            return []
        try:
            with fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 16_384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    # Summary ----------------------------------------------------------------------------------
    def summary(self, cache: FileCache | None = None) -> RunSummary:
        """This run at a glance, for `bvae runs` and the TUI's runs table.

        ``cache``: a poller's, so that config.json, the last metrics row and eval.json are parsed
        again only when they change (status.json is read every time: liveness can change
        without it).
        """
        def load(path: Path, parse: Callable[[Path], T]) -> T:
            return cache.get(path, parse) if cache is not None else parse(path)

        record, config_error = load(self.config_path, checked_record)
        last = load(self.metrics_path, last_row) or MetricsRow()
        scored = load(self.eval_path, read_eval)
        job = with_liveness(load(self.path / EVAL_JOB_FILE, read_job))  # a detached eval
        status = self.status()
        record = record or RunRecord()
        cfg = record.config
        state = status.state or "failed"
        end = time.time() if state == "running" else (status.updated or status.heartbeat)
        total = status.total if status.total is not None else as_int(cfg.get("iterations"))
        return RunSummary(
            id=self.id, name=record.name or self.id, path=str(self.path), state=state,
            iteration=status.iteration if status.iteration is not None else (last.iter or 0),
            total=total, device=status.device or as_str(cfg.get("device")),
            dataset=as_str(cfg.get("dataset")), objective=as_str(cfg.get("objective")),
            created=record.created or status.created, updated=status.updated,
            error=status.error or config_error, loss=last.loss, kl=last.kl,
            img_per_s=last.img_per_s, started=status.started,
            duration=end - status.started if status.started and end else None,
            activity=status.activity, eval_error=status.eval_error, config_error=config_error,
            evaluation=progress_text(job),
            dataset_source=record.dataset_source, data_dir=record.data_dir,
            scores=scored.scores if scored else {}, config=cfg, sweep=record.sweep,
            sweep_values=record.sweep_values)


class MetricsTail:
    """Reads the rows appended to a metrics.jsonl since the last call (see
    :class:`~bvae_tui.engine.runs.files.JsonLinesTail`: torn lines wait, a replaced file is
    read again from the start)."""

    def __init__(self, path: Path):
        self._lines = JsonLinesTail(path)

    def read_new(self) -> list[MetricsRow]:
        return [MetricsRow.from_dict(row) for row in self._lines.read_new()]


class ProbesTail:
    """Reads the rows appended to a probes.jsonl since the last call (as :class:`MetricsTail`)."""

    def __init__(self, path: Path):
        self._lines = JsonLinesTail(path)

    def read_new(self) -> list[ProbeRow]:
        return [ProbeRow.from_dict(row) for row in self._lines.read_new()]


def _rewrite_lines(path: Path, temp_name: str, lines: list[str]) -> None:
    """Replace the JSON-lines file ``path`` with ``lines``, atomically, through a temp file of
    its folder (never through a link planted under the temp file's name)."""
    tmp = path.with_name(temp_name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by an interrupted resume (or planted: a link is not followed)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    """Package versions worth recording with a run (read from metadata: no heavy imports)."""
    out = {}
    for pkg in ("bvae-tui", "torch", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _ensure_root(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create runs dir {root} ({exc.strerror}); "
                       "choose another with --runs-dir or BVAE_RUNS_DIR") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise RunError(f"runs dir {root} is not writable; "
                       "choose another with --runs-dir or BVAE_RUNS_DIR")
    return root


def create_run(root: Path, config: TrainConfig, data_dir: str | os.PathLike,
               name: str | None = None, sweep: str | None = None,
               sweep_values: dict[str, Any] | None = None) -> Run:
    """Create a run directory holding config.json and a ``queued`` status (``sweep``: the id of
    the sweep it is a member of, with its ``sweep_values``).

    Everything is written into a hidden temporary directory that is renamed into place at the
    end, so a failure never leaves a half-created run that looks healthy.
    """
    root = _ensure_root(Path(root))
    label = slug(name or default_name(config))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{label}"
    n = 2
    while (root / run_id).exists():
        run_id, n = f"{stamp}-{label}-{n}", n + 1
    tmp = Path(tempfile.mkdtemp(prefix=".creating-", dir=root))
    try:
        share_like_open(tmp, directory=True)
        now = time.time()
        record = RunRecord(config=config.to_dict(), name=name or default_name(config),
                           data_dir=str(Path(data_dir).resolve()), created=now,
                           host=socket.gethostname(), versions=versions(), sweep=sweep,
                           sweep_values=dict(sweep_values or {}))
        write_json_atomic(tmp / CONFIG_FILE, record.to_dict())
        status = Status(state="queued", iteration=0, total=config.iterations, created=now,
                        updated=now)
        write_json_atomic(tmp / STATUS_FILE, status.to_dict())
        os.rename(tmp, root / run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(root / run_id)


def iter_runs(root: Path) -> Iterator[Run]:
    """Run directories under ``root`` (none when it does not exist), oldest first."""
    try:
        entries = sorted(p for p in Path(root).iterdir()
                         if valid_id(p.name) and p.is_dir() and not is_link(p))
    except OSError:
        return
    for path in entries:
        if (path / CONFIG_FILE).exists() or (path / STATUS_FILE).exists():
            yield Run(path)


def list_runs(root: Path) -> list[Run]:
    return list(iter_runs(root))


def find_run(root: Path, ref: str) -> Run:
    """A run under ``root`` by id, unique id prefix, unique name, or a path to one of its run
    directories; else a one-line :class:`RunError`.

    A ref is a path only when it holds a ``/`` (so a folder in the current directory never
    shadows the run of the same name), and that path must be a run directory directly under
    ``root``: a command never acts on a directory elsewhere that happens to hold a config.json.
    """
    if "/" in ref:
        return Run(run_dir_at(root, ref))
    if is_link(Path(root) / ref):
        check_record_dir(Path(root) / ref, CONFIG_FILE, "run")  # says it is a link
    return match_ref(ref, list_runs(root), "run", root, "bvae runs", RunError)


def run_dir_at(root: Path, ref: str) -> Path:
    """The run directory a path ref names, if it is one directly under ``root``."""
    root = Path(root).resolve()
    path = Path(ref).expanduser()
    if is_link(path):
        check_record_dir(path, CONFIG_FILE, "run")  # says it is a link
    path = path.resolve()
    if path.parent != root:
        raise RunError(f"{ref} is not a run directory under the runs dir {root}; name the run "
                       "by its id or name, and choose its runs dir with --runs-dir")
    check_record_dir(path, RUN_RECORDS, "run")
    return path


def check_deletable(run: Run, holding_lock: bool = False) -> None:
    """A :class:`RunError` while a process holds the run (naming it) or its worker is alive,
    or when this process may not delete it."""
    holder = None if holding_lock else lock_holder(run)
    if holder is not None:
        raise RunLocked(run.path, holder, None)
    evaluator = lock_holder(run, EVAL_LOCK_FILE)
    if evaluator is not None:
        raise RunError(f"run {run.id} is being evaluated (pid {evaluator}); wait for it to "
                       "finish (a minute or a few), then delete it")
    if run.status().active:
        raise RunError(f"run {run.id} is still running; stop it first with 'bvae stop {run.id}'")
    check_writable(run, "delete", also_parent=True, fix=DELETE_FIX)


def delete_run(run: Run) -> None:
    """Remove a run directory; refuse while a process holds its lock or its worker is alive."""
    check_record_dir(run.path, RUN_RECORDS, "run")  # no link out of the root, no stranger
    with RunLock(run):  # a writer that comes after this finds the run gone
        check_deletable(run, holding_lock=True)
        # Rename first so a half-deleted run never shows up as a broken one.
        trash = run.path.parent / f".deleting-{run.id}"
        try:
            os.rename(run.path, trash)
        except OSError as exc:
            raise write_error(run.path, exc, "delete", DELETE_FIX) from None
    shutil.rmtree(trash, ignore_errors=True)
