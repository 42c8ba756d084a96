"""The run store: run directories, their status, and incremental reading of their metrics.

A run is a directory ``<runs root>/<run id>/`` (see DESIGN.md for every file in it). This module is
the only code that knows the layout; the worker writes through it and both faces read through it.
It imports neither torch nor anything heavy, so listing runs is fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bvae_tui.engine.atomic import atomic_path, share_like_open
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError, RunError

STATES = ("queued", "running", "finished", "stopped", "failed", "lost")
ACTIVE_STATES = ("queued", "running")  # states that need a live worker behind them
QUEUED_GRACE_S = 60.0  # a new run without a worker pid yet is 'queued', not 'lost', this long
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "worker.log"
EVAL_FILE = "eval.json"


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """The runs root: ``--runs-dir``, else ``$BVAE_RUNS_DIR``, else ``./runs``."""
    chosen = runs_dir or os.environ.get("BVAE_RUNS_DIR") or "runs"
    return Path(chosen).expanduser().resolve()


# --------------------------------------------------------------------------------------------
# Atomic files


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see either the old or the new file, even after a crash."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------
# Processes


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone.

    Comparing it with the value the worker recorded tells a live worker from a recycled pid.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None if not _pid_exists(pid) else -1
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall: starttime
    except (IndexError, ValueError):
        return -1


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_alive(pid: int | None, start: int | None) -> bool:
    """Is the process that wrote this status still the one running under ``pid``?"""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # missing, or a hand-edited / corrupt status.json
    now = process_start_time(pid)
    if now is None:
        return False
    if start in (None, -1) or now == -1:  # no /proc (not Linux): trust the pid
        return True
    if now != start:
        return False
    # A zombie (exited, not yet reaped by its parent) is not a live worker.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Runs


def _slug(text: str) -> str:
    slug = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", text)).strip("-.")
    return slug[:40] or "run"


def default_name(config: TrainConfig) -> str:
    """A readable default run name, e.g. ``dsprites-H-b4`` or ``dsprites-B-g100-c20``."""
    data = config.dataset
    if data.startswith("folder:"):
        data = data.split(":", 1)[0]
    if config.objective == "H":
        return f"{data}-H-b{config.beta:g}"
    return f"{data}-B-g{config.gamma:g}-c{config.c_max:g}"


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
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    @property
    def previews_dir(self) -> Path:
        return self.path / "previews"

    @property
    def exports_dir(self) -> Path:
        return self.path / "exports"

    # Config -----------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """config.json as written at creation (config, data_dir, name, versions, host, created)."""
        data = read_json(self.config_path)
        if data is None or not isinstance(data.get("config"), dict):
            raise RunError(f"run {self.id}: {CONFIG_FILE} is missing or corrupt; "
                           f"delete the run with 'bvae runs rm {self.id}'")
        return data

    def update_record(self, **fields: Any) -> None:
        """Add facts learnt at start-up (e.g. which dSprites was used) to config.json."""
        record = self.record()
        record.update(fields)
        write_json_atomic(self.config_path, record)

    @property
    def config(self) -> TrainConfig:
        try:
            return TrainConfig.from_dict(self.record()["config"])
        except (ConfigError, TypeError) as exc:
            raise RunError(f"run {self.id}: {CONFIG_FILE} is not a valid config ({exc})") from None

    @property
    def name(self) -> str:
        data = read_json(self.config_path) or {}
        return str(data.get("name") or self.id)

    @property
    def data_dir(self) -> str | None:
        return (read_json(self.config_path) or {}).get("data_dir")

    # Status -----------------------------------------------------------------------------------
    def raw_status(self) -> dict[str, Any]:
        """status.json as written, or a ``failed`` placeholder when it is missing or corrupt."""
        data = read_json(self.status_path)
        if data is None or data.get("state") not in STATES:
            return {"state": "failed", "error": f"{STATUS_FILE} is missing or corrupt"}
        return data

    def status(self) -> dict[str, Any]:
        """The status with ``lost`` worked out: active on disk but no live worker behind it."""
        data = self.raw_status()
        if (data["state"] == "queued" and not data.get("pid")
                and time.time() - float(data.get("updated") or 0) < QUEUED_GRACE_S):
            return data  # just created; its worker is being started
        if data["state"] in ACTIVE_STATES and not worker_alive(data.get("pid"),
                                                              data.get("pid_start")):
            data = {**data, "state": "lost",
                    "error": f"worker (pid {data.get('pid')}) is gone; "
                             f"'bvae resume {self.id}' continues from the last checkpoint"}
        return data

    @property
    def state(self) -> str:
        return self.status()["state"]

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and stamp ``updated``."""
        current = read_json(self.status_path) or {}
        current.update(fields)
        current["updated"] = time.time()
        write_json_atomic(self.status_path, current)
        return current

    # Metrics and results -----------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        """Every complete row of metrics.jsonl (a torn last line is ignored)."""
        return MetricsTail(self.metrics_path).read_new()

    def last_metrics(self) -> dict[str, Any] | None:
        return last_row(self.metrics_path)

    def eval_results(self) -> dict[str, Any] | None:
        return read_json(self.eval_path)

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 16_384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


def last_row(path: Path, chunk: int = 65_536) -> dict[str, Any] | None:
    """The last complete, valid row of a JSON-lines file, reading only its end.

    The runs table and `bvae runs` need one row per run; parsing the whole metrics file of
    every long run every second would not scale. A torn last line (mid-write) is skipped.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = size
            while start > 0:
                start = max(0, start - chunk)
                fh.seek(start)
                data = fh.read(size - start)
                lines = data.split(b"\n")
                complete = lines[:-1]  # after the last newline: torn or empty
                if start > 0:
                    complete = complete[1:]  # the first piece may be a partial line
                for line in reversed(complete):
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
                        return row
                chunk *= 4  # very long rows (many latents): look further back
    except OSError:
        return None
    return None


class MetricsTail:
    """Incremental reader of a growing JSON-lines file.

    Each :meth:`read_new` returns only the rows completed since the last call. A last line without
    its newline is held back until it is complete (the writer may be mid-write); a line that is
    complete but not valid JSON is skipped. If the file shrinks or is replaced, reading restarts.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._inode: int | None = None

    def read_new(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self._inode or st.st_size < self.offset:
            self._inode, self.offset = st.st_ino, 0
        if st.st_size == self.offset:
            return []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = []
        for line in chunk[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


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
               name: str | None = None) -> Run:
    """Create a run directory holding config.json and a ``queued`` status.

    Everything is written into a hidden temporary directory that is renamed into place at the
    end, so a failure never leaves a half-created run that looks healthy.
    """
    root = _ensure_root(Path(root))
    label = _slug(name or default_name(config))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{label}"
    n = 2
    while (root / run_id).exists():
        run_id, n = f"{stamp}-{label}-{n}", n + 1
    tmp = Path(tempfile.mkdtemp(prefix=".creating-", dir=root))
    try:
        share_like_open(tmp, directory=True)
        record = {
            "config": config.to_dict(),
            "name": name or default_name(config),
            "data_dir": str(Path(data_dir).resolve()),
            "created": time.time(),
            "host": socket.gethostname(),
            "versions": versions(),
        }
        write_json_atomic(tmp / CONFIG_FILE, record)
        write_json_atomic(tmp / STATUS_FILE, {"state": "queued", "iteration": 0,
                                              "total": config.iterations,
                                              "created": record["created"],
                                              "updated": record["created"]})
        os.rename(tmp, root / run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(root / run_id)


def iter_runs(root: Path) -> Iterator[Run]:
    """Run directories under ``root`` (none when it does not exist), oldest first."""
    try:
        entries = sorted(p for p in Path(root).iterdir()
                         if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for path in entries:
        if (path / CONFIG_FILE).exists() or (path / STATUS_FILE).exists():
            yield Run(path)


def list_runs(root: Path) -> list[Run]:
    return list(iter_runs(root))


def find_run(root: Path, ref: str) -> Run:
    """A run by id, unique id prefix, unique name, or path; else a :class:`RunError`."""
    candidate = Path(ref)
    if candidate.is_dir() and (candidate / CONFIG_FILE).exists():
        return Run(candidate.resolve())
    runs = list_runs(root)
    exact = [r for r in runs if r.id == ref]
    if exact:
        return exact[0]
    matches = [r for r in runs if r.id.startswith(ref)] or [r for r in runs if r.name == ref]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunError(f"no run '{ref}' under {root}; 'bvae runs' lists them")
    listed = ", ".join(r.id for r in matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise RunError(f"'{ref}' matches {len(matches)} runs ({listed}); give more of the id")


def delete_run(run: Run) -> None:
    """Remove a run directory; refuse while its worker is alive."""
    if run.status()["state"] in ACTIVE_STATES:
        raise RunError(f"run {run.id} is still running; stop it first with 'bvae stop {run.id}'")
    # Rename first so a half-deleted run never shows up as a broken one.
    trash = run.path.parent / f".deleting-{run.id}"
    os.rename(run.path, trash)
    shutil.rmtree(trash, ignore_errors=True)
