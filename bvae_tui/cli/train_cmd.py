"""`bvae train`, `bvae resume`, `bvae stop`, `bvae runs` (list / show / rm) and `bvae gpus`.

The engine does the work; these commands collect options and show what the engine wrote. torch
and the engine's heavy modules are imported inside the command functions, so `bvae --help` and
`bvae runs` start fast.
"""

from __future__ import annotations

import inspect
import signal
import time
from typing import Annotated, Any

import typer

from bvae_tui.cli.common import (
    DataDirOpt,
    JsonOpt,
    RunArg,
    RunsDirOpt,
    console,
    find_run,
    human_bytes,
    print_json,
)
from bvae_tui.cli.main import app
from bvae_tui.cli.options import config_field_names, with_config_options

RUN_PANEL = "Run"


# --------------------------------------------------------------------------------------------
# Training in the foreground


def _train_foreground(run: Any, resume: bool) -> None:
    """Train in this process under a progress bar; Ctrl-C stops with a checkpoint."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from datasets.errors import UserError
    from engine.trainer import train

    out = console()
    cfg = run.config
    try:
        _prepare_data_visibly(cfg.dataset, run.data_dir)
    except UserError as exc:  # the run must not stay 'queued' behind a one-line error
        run.write_status(state="failed", error=str(exc), pid=None)
        raise
    stop = {"requested": False}

    def on_sigint(signum: int, frame: object) -> None:
        stop["requested"] = stop["interrupted"] = True
        out.print("[yellow]stopping: finishing this step and writing a checkpoint "
                  "(Ctrl-C again to abort at once)[/]")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    start = run.raw_status().get("iteration", 0) if resume else 0
    progress = Progress(
        BarColumn(bar_width=16), MofNCompleteColumn(),
        TextColumn("loss [cyan]{task.fields[loss]}[/] KL [magenta]{task.fields[kl]}[/] "
                   "{task.fields[ips]} img/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=out, transient=False,
    )
    task = progress.add_task("train", total=cfg.iterations, completed=start or 0,
                             loss="-", kl="-", ips="-")

    def on_row(row: dict[str, Any]) -> None:
        progress.update(task, completed=row["iter"], loss=f"{row['loss']:.2f}",
                        kl=f"{row['kl']:.2f}", ips=f"{row['img_per_s']:.0f}")

    def on_progress(iteration: int) -> None:
        progress.update(task, completed=iteration)

    def on_sigterm(signum: int, frame: object) -> None:  # `bvae stop` from another terminal
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    out.print(f"run [bold]{run.id}[/] in {run.path}")
    try:
        with progress:
            state = train(run, resume=resume, on_row=on_row, on_progress=on_progress,
                          should_stop=lambda: stop["requested"])
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    _report_end(run, state)
    if stop.get("interrupted"):
        raise typer.Exit(code=130)  # the shell convention for Ctrl-C, checkpoint or not


def _prepare_data_visibly(dataset: str, data_dir: str | None) -> None:
    """Prepare a missing dataset under a progress bar (the trainer would do it silently)."""
    from datasets.loader import dataset_status

    if dataset_status(dataset, data_dir)["prepared"]:
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from datasets.prepare import prepare

    if not console().is_terminal:
        prepare(dataset, data_dir)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console(), transient=True) as bar:
        task = bar.add_task(f"preparing {dataset}", total=None)

        def report(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"preparing {dataset}: {stage}", completed=done,
                       total=total)

        prepare(dataset, data_dir, progress=report)


def _report_end(run: Any, state: str) -> None:
    status = run.status()
    out = console()
    last = run.last_metrics() or {}
    it = status.get("iteration", 0)
    if state == "finished":
        loss = f", loss {last['loss']:.2f}" if "loss" in last else ""
        out.print(f"[green]finished[/] {run.id} at iteration {it}{loss}")
        out.print(f"next: bvae export gif {run.id}   bvae eval {run.id}")
    elif state == "stopped":
        out.print(f"[yellow]stopped[/] {run.id} at iteration {it}; "
                  f"continue with: bvae resume {run.id}")
    else:
        typer.echo(f"error: run {run.id} failed: {status.get('error') or state}", err=True)
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------------------------
# bvae train (options generated from the config schema)


def _train(**values: Any) -> None:
    from engine.config import make_config
    from engine.devices import gpu_spec
    from engine.errors import ConfigError
    from engine.worker import check_launch, start_run

    preset, name, detach, gpu = (values.pop(k) for k in ("preset", "name", "detach", "gpu"))
    runs_dir, data_dir = values.pop("runs_dir"), values.pop("data_dir")
    overrides = {k: v for k, v in values.items() if k in config_field_names() and v is not None}
    if gpu is not None:
        device = gpu_spec(gpu)
        if overrides.get("device") not in (None, device):
            raise ConfigError("give either --gpu or --device, not both")
        overrides["device"] = device
    cfg = make_config(preset, **overrides)
    if not detach:
        # Validate, then get the data ready (with a progress bar) before any run exists, so a
        # missing dataset is an error, not a failed run. Detached, the worker prepares it.
        check_launch(cfg, data_dir)
        _prepare_data_visibly(cfg.dataset, data_dir)
    run = start_run(cfg, runs_dir=runs_dir, data_dir=data_dir, name=name, detach=detach)
    if detach:
        typer.echo(run.id)
        return
    _train_foreground(run, resume=False)


_TRAIN_EXTRA = [
    inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--preset", help="start from a paper setting: dsprites-H, "
                                 "dsprites-VAE, dsprites-B, dsprites-B-paper, celeba-H, chairs-H",
                                 rich_help_panel=RUN_PANEL, show_default=False)]),
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
)(with_config_options(_train, _TRAIN_EXTRA))


# --------------------------------------------------------------------------------------------
# bvae resume / stop


@app.command()
def resume(
    run: RunArg,
    detach: Annotated[bool, typer.Option("--detach", "-d",
                                         help="continue in a background worker")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", help="train again from iteration 0 when the run has no checkpoint")] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Continue a stopped, failed or lost run from its last checkpoint."""
    from engine.worker import check_resumable, launch

    found = find_run(run, runs_dir)
    check_resumable(found, restart=restart)
    if detach:
        launch(found, resume=True)
        typer.echo(found.id)
        return
    _train_foreground(found, resume=True)


@app.command()
def stop(
    run: RunArg,
    wait: Annotated[float, typer.Option(help="seconds to wait for the checkpoint")] = 30.0,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Stop a running run: it finishes its step, writes a checkpoint and becomes 'stopped'."""
    from engine.runs import ACTIVE_STATES
    from engine.worker import stop as stop_run

    found = find_run(run, runs_dir)
    stop_run(found, wait=wait)
    status = found.status()
    if status["state"] in ACTIVE_STATES:
        typer.echo(f"stop requested for {found.id}; it is still finishing its step")
    else:
        typer.echo(f"{found.id}: {status['state']} at iteration {status.get('iteration', 0)}")


# --------------------------------------------------------------------------------------------
# bvae runs


runs_app = typer.Typer(help="List runs; show or delete one.", no_args_is_help=False)
app.add_typer(runs_app, name="runs")


def _summary(run: Any) -> dict[str, Any]:
    """What the runs table and its JSON show for one run (no torch, no full metrics read)."""
    status = run.status()
    record: dict[str, Any] = {}
    try:
        record = run.record()
    except Exception:  # a damaged config.json still gets listed, as such
        record = {}
    cfg = record.get("config") or {}
    last = run.last_metrics() or {}
    return {
        "id": run.id, "name": run.name, "path": str(run.path), "state": status["state"],
        "iteration": status.get("iteration", 0), "total": status.get("total"),
        "device": status.get("device") or cfg.get("device"), "dataset": cfg.get("dataset"),
        "objective": cfg.get("objective"), "created": record.get("created"),
        "updated": status.get("updated"), "error": status.get("error"),
        "loss": last.get("loss"), "kl": last.get("kl"), "img_per_s": last.get("img_per_s"),
    }


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"



STATE_STYLE = {"running": "green", "queued": "cyan", "finished": "blue", "stopped": "yellow",
               "failed": "red", "lost": "red"}


@runs_app.callback(invoke_without_command=True)
def runs_list(ctx: typer.Context, runs_dir: RunsDirOpt = None, json: JsonOpt = False) -> None:
    """List runs with their state, progress and latest loss."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from engine.runs import list_runs, runs_root

    root = runs_root(runs_dir)
    rows = [_summary(r) for r in list_runs(root)]
    if json:
        print_json(rows)
        return
    out = console()
    if not rows:
        out.print(f"no runs under {root}; start one with: bvae train --dataset dsprites")
        return
    if not out.is_terminal:
        out.width = 200  # piped: whole lines, never wrapped ids
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("ID", "STATE", "PROGRESS", "LOSS", "KL", "DEVICE", "UPDATED"):
        table.add_column(col, justify="right" if col in ("LOSS", "KL") else "left",
                         no_wrap=True, min_width=len(col) if col != "ID" else None)
    for r in rows:
        total = r["total"] or 0
        pct = f" {100 * r['iteration'] / total:.0f}%" if total else ""
        style = STATE_STYLE.get(r["state"], "")
        table.add_row(r["id"], f"[{style}]{r['state']}[/]" if style else r["state"],
                      f"{r['iteration']}/{total or '?'}{pct}",
                      "-" if r["loss"] is None else f"{r['loss']:.2f}",
                      "-" if r["kl"] is None else f"{r['kl']:.2f}",
                      r["device"] or "-", _age(r["updated"]))
    out.print(table)


@runs_app.command("show")
def runs_show(
    run: RunArg,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False,
) -> None:
    """Show one run: config, status, latest metrics and evaluation scores."""

    found = find_run(run, runs_dir)
    record = found.record()
    data = {**_summary(found), "status": found.status(), "config": record["config"],
            "data_dir": record.get("data_dir"), "dataset_source": record.get("dataset_source"),
            "host": record.get("host"),
            "versions": record.get("versions"), "last_metrics": found.last_metrics(),
            "eval": found.eval_results(),
            "checkpoint": str(found.last_checkpoint) if found.last_checkpoint.exists() else None}
    if json:
        print_json(data)
        return
    out = console()
    status = data["status"]
    style = STATE_STYLE.get(status["state"], "")
    out.print(f"[bold]{found.id}[/]  [{style}]{status['state']}[/]  "
              f"{data['iteration']}/{data['total']}  {found.path}")
    if status.get("error"):
        out.print(f"[red]{status['error']}[/]")
    cfg = record["config"]
    if data["dataset_source"]:
        out.print(f"data: {record['config']['dataset']} ({data['dataset_source']}) "
                  f"from {data['data_dir']}")
    out.print("config: " + " ".join(f"{k}={v}" for k, v in cfg.items()))
    last = data["last_metrics"]
    if last:
        def num(key: str, fmt: str = ".3f") -> str:  # a hand-edited row may lack fields
            value = last.get(key)
            return format(value, fmt) if isinstance(value, (int, float)) else "-"

        c = f" C {num('c', '.2f')}" if last.get("c") is not None else ""
        out.print(f"iteration {last.get('iter', '-')}: loss {num('loss')} recon {num('recon')} "
                  f"KL {num('kl')}{c}  {num('img_per_s', '.0f')} img/s")
        kls = last.get("kl_per_latent")
        if isinstance(kls, list):
            out.print("KL per latent: " + " ".join(
                f"{v:.2f}" if isinstance(v, (int, float)) else "-" for v in kls))
    if data["eval"]:
        scores = data["eval"].get("scores", {})
        out.print("eval: " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in scores.items()))
    if data["checkpoint"]:
        out.print(f"checkpoint: {data['checkpoint']}")


@runs_app.command("rm")
def runs_rm(
    run: RunArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Delete a run directory (not while it is running)."""
    from engine.errors import RunError
    from engine.runs import ACTIVE_STATES, delete_run

    found = find_run(run, runs_dir)
    state = found.status()["state"]
    if state in ACTIVE_STATES:
        raise RunError(f"run {found.id} is {state}; stop it first with 'bvae stop {found.id}'")
    try:
        confirmed = yes or typer.confirm(f"delete run {found.id} ({state}) and all its files?")
    except typer.Abort:  # end of input: nobody there to answer
        typer.echo("")
        raise RunError(f"no answer to the confirmation; pass --yes to delete {found.id}") from None
    if not confirmed:
        typer.echo("kept", err=True)
        raise typer.Exit(code=1)
    delete_run(found)
    typer.echo(f"deleted {found.id}")


# --------------------------------------------------------------------------------------------
# bvae gpus


@app.command()
def gpus(json: JsonOpt = False) -> None:
    """List the devices training can use: NVIDIA GPUs as NVML numbers them, and the CPU."""
    import os

    from engine.devices import list_gpus

    found, reason = list_gpus()
    if json:
        print_json({"gpus": [g.to_dict() for g in found], "cpu": {"cores": os.cpu_count()},
                    "reason": reason})
        return
    out = console()
    for g in found:
        util = "-" if g.utilization is None else f"{g.utilization}%"
        out.print(f"GPU {g.index}  {g.name}  free {human_bytes(g.memory_free)} of "
                  f"{human_bytes(g.memory_total)}  utilisation {util}   (--gpu {g.index})")
    out.print(f"CPU  {os.cpu_count()} cores   (--device cpu)")
    if reason:
        out.print(f"[yellow]no GPUs: {reason}[/]")
