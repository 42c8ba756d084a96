"""The files of a sweep directory, ``<runs root>/sweeps/<sweep id>/``, as typed records.

Like the run directory's records (:mod:`bvae_tui.engine.runs.records`), each JSON file has one
tolerant reader and one checked writer (:mod:`bvae_tui.engine.runs.typed_json`), and
docs/run-directory.md documents them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bvae_tui.engine.runs.typed_json import REQUIRED, Record
from bvae_tui.engine.runs.typed_json import doc_field as _doc

SWEEPS_DIR = "sweeps"  # under the runs root
SWEEP_FILE = "sweep.json"
SCHEDULER_FILE = "scheduler.json"
SCHEDULER_LOG = "scheduler.log"
SCHEDULER_LOCK = "scheduler.lock"
QUEUE_LOCK = "queue.lock"
SLURM_DIR = "slurm"
SLOTS_DIR = ".slots"  # under runs/sweeps/: one slot table per host

SWEEP_STATES = ("running", "finished", "stopped", "lost")

# (path, who writes it, what it holds), for the generated document.
SWEEP_FILES = (
    (SWEEP_FILE, "`bvae sweep`, the TUI", "what the sweep is: [sweep.json](#sweepjson)"),
    (SCHEDULER_FILE, "the scheduler, `bvae sweep stop/resume`",
     "where it is: [scheduler.json](#schedulerjson)"),
    (SCHEDULER_LOG, "the scheduler", "its output: a line per member started or ended"),
    (SCHEDULER_LOCK, "the scheduler", "held (flock) by the one live scheduler of the sweep"),
    (QUEUE_LOCK, "the scheduler, stop and resume",
     "held (flock) while a member is taken from the queue or put back"),
    (f"{SLURM_DIR}/", "submitit", "Slurm sweeps: job scripts, pickled jobs, Slurm's logs"),
)


@dataclass(kw_only=True)
class SweepRecord(Record):
    """What the sweep is: written once when it is created (atomically, with every member's run
    directory already in place). Member `i` has the `i`-th combination of the swept values, the
    first swept field outermost; its config.json holds the same values in `sweep_values`."""

    name: str | None = _doc("sweep name")
    description: str | None = _doc("what the sweep reproduces (built-in and file specs)")
    created: float | None = _doc("when it was created")
    host: str | None = _doc("machine it was created on")
    preset: str | None = _doc("preset the members start from")
    fixed: dict[str, Any] = _doc("config values every member shares (beyond the preset)",
                                 factory=dict)
    axes: list[str] = _doc("swept fields, in grid order (rows, then columns)", factory=list)
    values: dict[str, list[Any]] = _doc("values of each swept field", factory=dict)
    members: list[str] = _doc("run ids of the members, in grid order", factory=list)
    executor: str | None = _doc("local or slurm")
    devices: list[str] = _doc("local: the devices the scheduler places members on "
                              "(`cuda:N` or `cpu`)", factory=list)
    per_device: int | None = _doc("local: members at once per device (`--per-gpu`, `--slots`)")
    slurm: dict[str, Any] = _doc("slurm: the resources asked for each member (partition, time "
                                 "in minutes, gpus_per_node, mem, array_parallelism, args)",
                                 factory=dict)


@dataclass(kw_only=True)
class SchedulerStatus(Record):
    """Where the sweep's scheduler is. Written by the scheduler (every poll) and by `bvae sweep
    stop` / `resume`; replaced atomically. A scheduler whose `pid` is gone while the state says
    running reads as lost."""

    state: str | None = _doc("starting, submitting (Slurm), running, stopped or finished")
    pid: int | None = _doc("process id of the local scheduler")
    pid_start: int | None = _doc("its start time (clock ticks since boot)")
    host: str | None = _doc("machine it runs on")
    started: float | None = _doc("when it (last) started")
    heartbeat: float | None = _doc("last poll")
    stop_requested: bool | None = _doc("`bvae sweep stop` asked it to start nothing more")
    memory_peak: int | None = _doc("largest GPU memory a member reserved (bytes), which every "
                                   "further start on a GPU needs free")
    placements: dict[str, str] = _doc("run id -> device of each member it started or adopted "
                                      "that is still active", factory=dict)
    jobs: dict[str, str] = _doc("slurm: run id -> Slurm job id of each member's latest "
                                "submission (`<array job>_<index>`)", factory=dict)
    error: str | None = _doc("why it stopped early")
    updated: float | None = _doc("last write of this file")


@dataclass(kw_only=True)
class SlotEntry(Record):
    """One run in a device slot of this host (`runs/sweeps/.slots/<host>.json`, a list under
    `slots`, guarded by an flock on `<host>.lock`). An entry whose worker is gone is dropped at
    the next claim, so the table heals after any crash."""

    device: str | None = _doc("device of the slot")
    run: str | None = _doc("run directory")
    sweep: str | None = _doc("sweep id")
    pid: int | None = _doc("worker pid")
    pid_start: int | None = _doc("worker start time")
    since: float | None = _doc("when it was claimed")


@dataclass(frozen=True, kw_only=True)
class SweepSummary:
    """One sweep at a glance (`bvae sweeps`, the TUI)."""

    JSON_KEYS: ClassVar[tuple[str, ...]] = (
        "id", "name", "path", "state", "executor", "members", "finished", "running", "queued",
        "stopped", "failed", "lost", "created", "scheduler_pid", "error")

    id: str = _doc("sweep id: creation time and a slug of its name", REQUIRED)
    name: str = _doc("sweep name", REQUIRED)
    path: str = _doc("sweep directory", REQUIRED)
    state: str = _doc("running, finished, stopped or lost (its scheduler died with members "
                      "left: `bvae sweep resume`)", REQUIRED)
    executor: str = _doc("local or slurm", "local")
    members: int = _doc("number of members", 0)
    finished: int = _doc("members finished", 0)
    running: int = _doc("members training", 0)
    queued: int = _doc("members waiting for a slot (or a Slurm node)", 0)
    stopped: int = _doc("members stopped", 0)
    failed: int = _doc("members failed (or whose run directory is gone)", 0)
    lost: int = _doc("members whose worker died", 0)
    created: float | None = _doc("when it was created")
    scheduler_pid: int | None = _doc("pid of its live local scheduler")
    error: str | None = _doc("why the scheduler stopped early, or is lost")
    iterations: int = _doc("steps trained by all members together", 0)
    total: int = _doc("steps all members train for together", 0)
    axes: tuple[str, ...] = _doc("swept fields", ())

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.JSON_KEYS}

    @property
    def counts(self) -> str:
        """``3 finished, 1 running, 2 queued`` (states with members only)."""
        parts = [f"{getattr(self, s)} {s}" for s in ("finished", "running", "queued", "stopped",
                                                     "failed", "lost") if getattr(self, s)]
        return ", ".join(parts) or "no members"


def markdown_lines(table: Callable[..., list[str]], paragraph: Callable[[type], str]
                   ) -> list[str]:
    """The sweeps part of docs/run-directory.md (``table`` and ``paragraph`` are the run
    records' own document helpers, passed in so that the two modules do not import each
    other)."""
    out = [
        "", "## runs/sweeps/: sweeps", "",
        "A sweep is a grid of ordinary runs: every member is a run directory like any other "
        "(its config.json names the sweep and holds its `sweep_values`), so every command "
        "works on it. The sweep itself is `<runs root>/sweeps/<sweep id>/`; its JSON files "
        "follow the reading rules above.", "",
        "| file | written by | content |", "|---|---|---|",
        *(f"| `{path}` | {writer} | {content} |" for path, writer, content in SWEEP_FILES),
        "",
        f"Beside the sweeps, `{SLOTS_DIR}/<host>.json` is the slot table of one machine: the "
        "runs every sweep's scheduler placed on each device there, so that several sweeps "
        "together keep to `--per-gpu` (see below).",
    ]
    for title, cls in (("sweep.json", SweepRecord), ("scheduler.json", SchedulerStatus),
                       (f"{SLOTS_DIR}/<host>.json", SlotEntry)):
        out += ["", f"### {title}", "", paragraph(cls), "", *table(cls)]
    out += ["", "### bvae sweeps --json", "",
            "A list with one object per sweep, oldest first, with these keys (`bvae sweep show "
            "--json` adds the spec and a `runs` list of the members).", "",
            *table(SweepSummary, SweepSummary.JSON_KEYS)]
    return out
