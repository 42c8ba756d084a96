"""`bvae sweep --dry-run`: what a spec would create and how long it would train, creating nothing.

Every member's config is built and validated as a real sweep would, and every data set name is
resolved through the registry (so a study naming data sets that are not registered fails in one
line naming the valid ones). Whether each data set is ready is said, not required: a dry run
plans, it does not prepare.

The estimate is training time only (scoring at the end comes on top), from this machine's
`bvae bench` figures (engine/bench/figures.py): for each member, steps x batch / img/s of its
architecture at the measured batch nearest its own, in bf16 where ``--amp`` would use it. The
figures are measured on dSprites (one channel); RGB data sets cost slightly more per image in
the first and last layers; a member at ``--image-size`` 32 or 128 is scaled from the 64x64
figure by its pixel count (the networks grow by stride-2 stages, so their work follows the pixels
roughly: an approximation, said in a note). Without a saved figure the dry run says so and how to
make one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from bvae_tui.engine.runs.sweeps.spec import SweepSpec

SIDE = 64  # the side `bvae bench` measures its training figures at


@dataclass
class Part:
    name: str
    count: int
    axes: list[str]
    objective: str | None


@dataclass
class DryRun:
    """A spec's plan without side effects: members per sweep and the estimated time."""

    count: int
    parts: list[Part]
    datasets: list[str]
    device: str  # the device the estimate is for
    device_name: str
    at_once: int | None  # members running together (None: not known, e.g. Slurm's default)
    train_seconds: float | None  # one member after another; None: no figure to estimate from
    figures_from: str | None  # where the figures were read, and when measured
    no_estimate: str | None  # why there is no estimate, and how to make one
    notes: list[str] = field(default_factory=list)

    @property
    def wall_seconds(self) -> float | None:
        if self.train_seconds is None or not self.at_once:
            return None
        return self.train_seconds / self.at_once

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "wall_seconds": self.wall_seconds}


def plan_dry_run(spec: SweepSpec, data_dir: str | os.PathLike | None = None) -> DryRun:
    from bvae_tui.datasets.errors import DataError
    from bvae_tui.datasets.loader import check_available
    from bvae_tui.datasets.registry import get_spec
    from bvae_tui.engine.runs.sweeps.control import check_grid, default_name

    settings = spec.executor.check()
    parts, configs = [], []
    for sweep in spec.sweeps():
        check_grid(sweep, yes=True)  # a dry run of any size is fine: it creates nothing
        members = [cfg for _, cfg in sweep.members()]
        parts.append(Part(sweep.name or default_name(sweep), len(members), sweep.axes,
                          sweep.fixed.get("objective")))
        configs += members
    datasets = list(dict.fromkeys(cfg.dataset for cfg in configs))
    notes = []
    for name in datasets:
        ds = get_spec(name)  # not registered: one line naming the valid ones
        uses = [c for c in configs if c.dataset == name]
        if any(c.eval_at_end for c in uses) and not ds.has_factors:
            notes.append(f"{name} has no ground-truth factors: its members' --eval-at-end would "
                         "be refused")
        for size in dict.fromkeys(c.image_size for c in uses):
            try:
                check_available(name, data_dir, size)
            except DataError as exc:
                notes.append(f"{name} is not ready: {exc}")
    if any(c.image_size != SIDE for c in configs):
        notes.append(f"members at other sizes than {SIDE}x{SIDE} are estimated from the "
                     f"{SIDE}x{SIDE} figures by their pixel count (an approximation)")
    device, at_once = _placement(spec, settings)
    seconds, figures_from, no_estimate, name = _estimate(configs, device)
    return DryRun(count=len(configs), parts=parts, datasets=datasets, device=device,
                  device_name=name, at_once=at_once, train_seconds=seconds,
                  figures_from=figures_from, no_estimate=no_estimate, notes=notes)


def _placement(spec: SweepSpec, settings) -> tuple[str, int | None]:
    """The device members would train on here, and how many would run at once."""
    from bvae_tui.engine.runs.devices import resolve_device
    from bvae_tui.engine.runs.sweeps import local
    from bvae_tui.engine.runs.sweeps.slots import train_device

    if settings.executor == "slurm":  # estimated with this machine's device: say so
        return resolve_device("auto"), settings.slurm.array_parallelism
    first = spec.sweeps()[0]
    devices, per_device, _where = local.placement(settings, first.fixed.get("device"))
    return train_device(devices[0]), len(devices) * per_device


def _estimate(configs: list, device: str) -> tuple[float | None, str | None, str | None, str]:
    from bvae_tui.engine.bench import figures
    from bvae_tui.engine.train.precision import device_name

    name = device_name(device)
    rates = figures.saved_rates(device)
    make = (f"run `bvae bench --device {device}` once on this machine (it saves its training "
            f"figures in {figures.bench_path()}), then the dry run again")
    if rates is None:
        return None, None, f"no bench figure for {device} ({name}) on this machine; {make}", name
    total, unmeasured = 0.0, set()
    bf16 = {amp: figures.uses_bf16(amp, device) for amp in {c.amp for c in configs}}
    for cfg in configs:
        found = rates.rate(cfg.architecture, cfg.batch_size, bf16[cfg.amp])
        if found is None:
            unmeasured.add(cfg.architecture)
            continue
        total += cfg.iterations * cfg.batch_size / found[0] * (cfg.image_size / SIDE) ** 2
    if unmeasured:
        archs = ", ".join(sorted(unmeasured))
        return None, None, (f"the bench figures for {device} ({name}) have no arch {archs}; "
                            f"{make}"), name
    when = _date(rates.measured)
    return total, f"`bvae bench` figures for {device} ({name}){when} in {figures.bench_path()}", \
        None, name


def _date(measured: float | None) -> str:
    if measured is None:
        return ""
    import time

    return ", measured " + time.strftime("%Y-%m-%d", time.localtime(measured))


def duration(seconds: float) -> str:
    """``3.2 h``, ``4.1 days``: a training time at the precision an estimate has."""
    hours = seconds / 3600
    if hours < 1:
        return f"{seconds / 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:,.1f} days"


def describe(result: DryRun, what: str) -> list[str]:
    """The lines `bvae sweep --dry-run` prints."""
    sweeps = len(result.parts)
    lines = [f"dry run of {what}: {result.count:,} members"
             + (f" in {sweeps} sweeps" if sweeps > 1 else "") + "; nothing was created"]
    width = max(len(p.name) for p in result.parts)
    for p in result.parts:
        lines.append(f"  {p.name:<{width}}  {p.count:>6,} members  ({' x '.join(p.axes)})"
                     + (f"  objective {p.objective}" if p.objective else ""))
    lines.append(f"data sets: {', '.join(result.datasets)}")
    if result.train_seconds is None:
        lines.append(f"estimated time: none ({result.no_estimate})")
    else:
        line = (f"estimated training time: {duration(result.train_seconds)} one member after "
                f"another on {result.device} ({result.device_name})")
        if result.wall_seconds is not None and result.at_once and result.at_once > 1:
            line += f"; {duration(result.wall_seconds)} with {result.at_once} at once"
        lines.append(line + "; scoring at the end not included")
        lines.append(f"from {result.figures_from}")
    lines += [f"note: {n}" for n in result.notes]
    return lines
