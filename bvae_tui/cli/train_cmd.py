"""`bvae train`, `bvae resume` and `bvae stop`: starting, continuing and stopping a run.

The engine does the work; these commands collect options and show what the engine wrote. torch
and the engine's heavy modules are imported inside the command functions, so `bvae --help` and
`bvae runs` start fast.
"""

from __future__ import annotations

import inspect
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bvae_tui.cli.common import (
    DataDirOpt,
    RunArg,
    RunsDirOpt,
    console,
    find_run,
)
from bvae_tui.cli.main import app
from bvae_tui.cli.options import config_field_names, with_config_options
from bvae_tui.engine.config import PRESETS
from bvae_tui.safe_text import markup_safe, plain

if TYPE_CHECKING:
    from bvae_tui.engine.runs.records import MetricsRow

RUN_PANEL = "Run"


# --------------------------------------------------------------------------------------------
# Training in the foreground


def _train_foreground(run: Any, resume: bool, lock: Any = None,
                      changes: dict[str, Any] | None = None) -> None:
    """Train in this process under a progress bar, holding the run's lock (``lock``, else taken
    here); Ctrl-C stops with a checkpoint. ``changes``: a resume's new lr / device."""
    from bvae_tui.engine.runs.lock import RunLock

    with lock or RunLock(run):
        _train_holding_lock(run, resume, changes)


def _train_holding_lock(run: Any, resume: bool, changes: dict[str, Any] | None) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from bvae_tui.engine.train.trainer import train
    from bvae_tui.errors import UserError

    out = console()
    cfg = run.config
    try:
        _prepare_data_visibly(cfg.dataset, run.data_dir, cfg.image_size)
    except UserError as exc:  # the run must not stay 'queued' behind a one-line error
        run.write_status(state="failed", error=str(exc), pid=None)
        raise
    stop = {"requested": False}

    def on_sigint(signum: int, frame: object) -> None:
        stop["requested"] = stop["interrupted"] = True
        out.print("[yellow]stopping: finishing this step and writing a checkpoint "
                  "(Ctrl-C again to abort at once)[/]")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    start = (run.raw_status().iteration or 0) if resume else 0
    progress = Progress(
        BarColumn(bar_width=16), MofNCompleteColumn(),
        TextColumn("loss [cyan]{task.fields[loss]}[/] KL [magenta]{task.fields[kl]}[/] "
                   "{task.fields[ips]} img/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=out, transient=False,
    )
    task = progress.add_task("train", total=cfg.iterations, completed=start or 0,
                             loss="-", kl="-", ips="-")

    def on_row(row: MetricsRow) -> None:
        progress.update(task, completed=row.iter, loss=f"{row.loss:.2f}",
                        kl=f"{row.kl:.2f}", ips=f"{row.img_per_s:.0f}")

    def on_progress(iteration: int) -> None:
        progress.update(task, completed=iteration)

    def on_sigterm(signum: int, frame: object) -> None:  # `bvae stop` from another terminal
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    out.print(f"run [bold]{markup_safe(run.id)}[/] in {markup_safe(run.path)}")
    try:
        with progress:
            state = train(run, resume=resume, on_row=on_row, on_progress=on_progress,
                          should_stop=lambda: stop["requested"], changes=changes)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    _report_end(run, state)
    if stop.get("interrupted"):
        raise typer.Exit(code=130)  # the shell convention for Ctrl-C, checkpoint or not


def _prepare_data_visibly(dataset: str, data_dir: str | None, image_size: int = 64) -> None:
    """Prepare a missing dataset (at the run's image size) under a progress bar (the trainer
    would do it silently)."""
    from bvae_tui.datasets.loader import dataset_status

    if dataset_status(dataset, data_dir, image_size)["prepared"]:
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from bvae_tui.datasets.prepare import prepare

    if not console().is_terminal:
        prepare(dataset, data_dir, image_size=image_size)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console(), transient=True) as bar:
        # The description is markup to rich: a folder dataset's path may hold brackets.
        task = bar.add_task(f"preparing {markup_safe(dataset)}", total=None)

        def report(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"preparing {markup_safe(dataset)}: {stage}",
                       completed=done, total=total)

        prepare(dataset, data_dir, progress=report, image_size=image_size)


def _report_end(run: Any, state: str) -> None:
    status = run.status()
    out = console()
    last = run.last_metrics()
    it = status.iteration or 0
    if state == "finished":
        loss = f", loss {last.loss:.2f}" if last and last.loss is not None else ""
        out.print(f"[green]finished[/] {markup_safe(run.id)} at iteration {it}{loss}")
        out.print(f"next: bvae export gif {markup_safe(run.id)}   "
                  f"bvae eval {markup_safe(run.id)}")
    elif state == "stopped":
        out.print(f"[yellow]stopped[/] {markup_safe(run.id)} at iteration {it}; "
                  f"continue with: bvae resume {markup_safe(run.id)}")
    else:
        typer.echo(plain(f"error: run {run.id} failed: {status.error or state}"), err=True)
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------------------------
# bvae train (options generated from the config schema)


def train_command(**values: Any) -> None:
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.launch import check_launch, start_run

    preset, name, detach, gpu = (values.pop(k) for k in ("preset", "name", "detach", "gpu"))
    runs_dir, data_dir = values.pop("runs_dir"), values.pop("data_dir")
    overrides = {k: v for k, v in values.items() if k in config_field_names() and v is not None}
    device = _device_option(overrides.get("device"), gpu)
    if device is not None:
        overrides["device"] = device
    cfg = make_config(preset, **overrides)
    if device == "auto" and (note := _auto_note()):  # asked for a GPU, gets the CPU: say so
        typer.echo(plain(note), err=True)
    if not detach:
        # Validate, then get the data ready (with a progress bar) before any run exists, so a
        # missing dataset is an error, not a failed run. Detached, the worker prepares it.
        check_launch(cfg, data_dir)
        _prepare_data_visibly(cfg.dataset, data_dir, cfg.image_size)
    run = start_run(cfg, runs_dir=runs_dir, data_dir=data_dir, name=name, detach=detach,
                    checked=not detach)
    if detach:
        typer.echo(run.id)
        return
    _train_foreground(run, resume=False)


_TRAIN_EXTRA = [
    inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--preset", help="start from a paper setting: "
                                 + ", ".join(PRESETS), rich_help_panel=RUN_PANEL,
                                 show_default=False)]),
    inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--name", help="run name (part of the run id)",
                                 rich_help_panel=RUN_PANEL, show_default=False)]),
    inspect.Parameter("detach", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--detach", "-d", help="train in a background worker and print the "
                           "run id at once", rich_help_panel=RUN_PANEL)]),
    inspect.Parameter("gpu", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--gpu", help="GPU number as 'bvae gpus' lists it, or auto "
                                 "(most free memory); same as --device cuda:N",
                                 rich_help_panel=RUN_PANEL, metavar="N|auto",
                                 show_default=False)]),
    inspect.Parameter("runs_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=RunsDirOpt),
    inspect.Parameter("data_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=DataDirOpt),
]

app.command(
    "train",
    help="Train a beta-VAE. Every option defaults to the preset's value, else the schema default.",
    no_args_is_help=False,
)(with_config_options(train_command, _TRAIN_EXTRA))


# --------------------------------------------------------------------------------------------
# bvae resume / stop


@app.command()
def resume(
    run: RunArg,
    detach: Annotated[bool, typer.Option("--detach", "-d",
                                         help="continue in a background worker")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", help="train again from iteration 0, discarding its checkpoints "
        "(e.g. when they are damaged)")] = False,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="a new learning rate from the resumed iteration on (recorded in the run)",
        show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="continue on another device: cpu, cuda:N or auto",
        show_default=False)] = None,
    gpu: Annotated[str | None, typer.Option(
        "--gpu", help="continue on GPU N as 'bvae gpus' lists it, or auto; same as --device "
        "cuda:N", metavar="N|auto", show_default=False)] = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Continue a stopped, failed or lost run from its last checkpoint (from iteration 0 when it
    has none)."""
    from bvae_tui.engine.runs.resume import plan_resume, resume_detached

    device = _device_option(device, gpu)
    found = find_run(run, runs_dir)
    plan = plan_resume(found, restart=restart, lr=lr, device=device)  # a second resume stops here
    lines = plan.messages()
    if device == "auto" and plan.device == "cpu":
        lines.append(_auto_note())
    for line in filter(None, lines):
        typer.echo(plain(line), err=True)
    if detach:
        resume_detached(plan)
        typer.echo(found.id)
        return
    _train_foreground(found, resume=not plan.restart, lock=plan.lock, changes=plan.changes)


def _device_option(device: str | None, gpu: str | None) -> str | None:
    """``--device`` or ``--gpu`` as a device spec (both: an error unless they agree)."""
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.devices import gpu_spec

    if gpu is None:
        return device
    spec = gpu_spec(gpu)
    if device not in (None, spec):
        raise ConfigError("give either --gpu or --device, not both")
    return spec


def _auto_note() -> str | None:
    from bvae_tui.engine.runs.devices import auto_cpu_note

    return auto_cpu_note()


@app.command()
def stop(
    run: RunArg,
    wait: Annotated[float, typer.Option(help="seconds to wait for the checkpoint")] = 30.0,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Stop a running run: it finishes its step, writes a checkpoint and becomes 'stopped'."""
    from bvae_tui.engine.runs.launch import stop as stop_run

    found = find_run(run, runs_dir)
    stop_run(found, wait=wait)
    status = found.status()
    if status.active:
        typer.echo(plain(f"stop requested for {found.id}; it is still finishing its step"))
    else:
        typer.echo(plain(f"{found.id}: {status.state} at iteration {status.iteration or 0}"))
