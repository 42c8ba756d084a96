"""Sweeps as the faces use them: plan, create and start, stop, resume, delete.

Each operation goes to the sweep's executor: :mod:`.local` (a scheduler on this machine) or
:mod:`.slurm` (a Slurm job array through submitit). A new executor is a module with the same
functions (``stop``, ``resume``, ``resume_member``, and a way to start its members), added to
:func:`create` and :func:`executor_of`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bvae_tui.datasets.registry import data_root
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError, SweepError
from bvae_tui.engine.runs.launch import check_launch
from bvae_tui.engine.runs.launch import stop as stop_run
from bvae_tui.engine.runs.store import Run, runs_root
from bvae_tui.engine.runs.sweeps import local, slurm
from bvae_tui.engine.runs.sweeps.grid import MAX_MEMBERS
from bvae_tui.engine.runs.sweeps.members import sweep_dir
from bvae_tui.engine.runs.sweeps.records import SchedulerStatus, SweepRecord
from bvae_tui.engine.runs.sweeps.slots import train_device
from bvae_tui.engine.runs.sweeps.spec import SweepSpec, check_one_line
from bvae_tui.engine.runs.sweeps.store import Sweep, create_sweep, delete_sweep


@dataclass
class Plan:
    """What a spec would create, checked, before anything exists."""

    spec: SweepSpec
    name: str
    executor: str
    members: list[tuple[dict[str, Any], TrainConfig]]
    devices: list[str] = field(default_factory=list)
    per_device: int = 1
    notes: list[str] = field(default_factory=list)  # lines worth telling the user

    @property
    def count(self) -> int:
        return len(self.members)


def default_name(spec: SweepSpec) -> str:
    """``dsprites-H-beta-seed``: where the members start from, then the swept fields."""
    fixed = spec.fixed
    objective = str(fixed.get("objective", "H"))
    if spec.preset:
        base = spec.preset
    elif "dataset" in spec.axes:  # no one data set to name it after (the axis says "dataset")
        base = objective
    else:
        base = f"{fixed.get('dataset', 'dsprites')}-{objective}"
    return "-".join([base, *spec.axes])


def check_grid(spec: SweepSpec, yes: bool = False) -> int:
    """The number of members, or a ConfigError for an empty or oversized grid."""
    if not spec.axes:
        raise ConfigError("nothing to sweep: give a list or a range for at least one field, "
                          "e.g. --beta 1,4 --seed 1..3")
    count = spec.count()
    if count > MAX_MEMBERS and not yes:
        raise ConfigError(f"the grid has {count:,} members, more than {MAX_MEMBERS:,}; pass "
                          "--yes to create them all")
    return count


def plan(spec: SweepSpec, runs_dir: str | os.PathLike | None = None,
         data_dir: str | os.PathLike | None = None, yes: bool = False) -> Plan:
    """Check a spec completely (grid, every member's config, data, devices, executor)."""
    settings = spec.executor.check()
    name = spec.name or default_name(spec)
    check_one_line(name, "the sweep name")  # it names the member runs and the Slurm job
    check_grid(spec, yes)
    device = spec.fixed.get("device")
    notes: list[str] = []
    devices: list[str] = []
    per_device = 1
    if settings.executor == "slurm":
        if settings.gpus is not None or settings.per_gpu is not None or settings.slots:
            raise ConfigError("--gpus, --per-gpu and --slots place local members; on Slurm "
                              "ask for --gpus-per-node and --array-parallelism")
        slurm.check(settings)
        member_device = slurm.member_device(settings)
        note = slurm.local_filesystem_note(runs_root(runs_dir))
        notes += [note] if note else []
    else:
        given = [k for k, v in vars(settings.slurm).items() if v not in (None, {})]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} is a Slurm option; add "
                              "--executor slurm")
        devices, per_device, where = local.placement(settings, device)
        member_device = train_device(devices[0]) if len(devices) == 1 else "auto"
        notes.append(where)
    members = [(swept, cfg.replace(device=member_device)) for swept, cfg in spec.members()]
    seen = set()
    for _, cfg in members:  # the data checks of `bvae train`, once per distinct dataset use
        key = (cfg.dataset, cfg.image_size, cfg.batch_size, cfg.eval_at_end)
        if key not in seen:
            seen.add(key)
            check_launch(cfg.replace(device="cpu"), data_dir)
    return Plan(spec=spec, name=name, executor=settings.executor,
                members=members, devices=devices, per_device=per_device, notes=notes)


def create(spec: SweepSpec, runs_dir: str | os.PathLike | None = None,
           data_dir: str | os.PathLike | None = None, yes: bool = False,
           poll: float | None = None, devices: list[str] | None = None) -> tuple[Sweep, Plan]:
    """Create the members and the sweep, and start it. ``devices`` replaces the planned local
    devices (tests place members on stand-in ``fake:N`` devices this way)."""
    p = plan(spec, runs_dir, data_dir, yes)
    if devices is not None:
        p.devices = list(devices)
    record = SweepRecord(
        name=p.name, description=spec.description, preset=spec.preset, fixed=spec.fixed,
        axes=spec.axes, values={k: spec.values[k] for k in spec.axes}, executor=p.executor,
        devices=p.devices, per_device=p.per_device,
        slurm={k: v for k, v in vars(spec.executor.slurm).items() if v not in (None, {})})
    state = "starting" if p.executor == "local" else "submitting"
    sweep = create_sweep(runs_root(runs_dir), record, p.members, data_root(data_dir),
                         SchedulerStatus(state=state))
    try:
        if p.executor == "slurm":
            slurm.submit(sweep, sweep.members())
        else:
            local.start_scheduler(sweep, poll)
    except BaseException:
        if p.executor == "slurm" or not sweep.scheduler_alive():
            delete_sweep(sweep, never_started=True)  # nothing ran: leave nothing behind
        raise
    return sweep, p


def executor_of(sweep: Sweep) -> ModuleType:
    return slurm if sweep.record().executor == "slurm" else local


def stop(sweep: Sweep, wait: float = 0) -> list[Run]:
    return executor_of(sweep).stop(sweep, wait)


def resume(sweep: Sweep, retry_failed: bool = False, poll: float | None = None) -> list[Run]:
    if executor_of(sweep) is slurm:
        return slurm.resume(sweep, retry_failed)
    return local.resume(sweep, retry_failed, poll)


def resume_member(sweep: Sweep, run: Run, poll: float | None = None) -> None:
    if executor_of(sweep) is slurm:
        slurm.resume_member(sweep, run)
    else:
        local.resume_member(sweep, run, poll)


def stop_member(run: Run, wait: float = 0) -> None:
    """Stop one member (running: it checkpoints; waiting: it leaves the queue; on Slurm: its
    job is cancelled); `bvae stop` does the same for any run."""
    stop_run(run, wait)


def remove(sweep: Sweep, keep_runs: bool = False) -> int:
    return delete_sweep(sweep, keep_runs)


def sweep_of(run: Run) -> Sweep:
    """The sweep ``run`` is a member of; a SweepError if none."""
    folder = sweep_dir(run)
    if folder is None or not folder.is_dir():
        raise SweepError(f"run {run.id} is not a member of a sweep on this runs dir")
    return Sweep(folder)
