"""`bvae runs`: list runs, show one, delete one."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from bvae_tui.cli.common import JsonOpt, RunArg, RunsDirOpt, console, find_run, print_json
from bvae_tui.cli.main import app

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

    from bvae_tui.engine.runs.store import list_runs, runs_root

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
    from bvae_tui.engine.errors import RunError
    from bvae_tui.engine.runs.store import ACTIVE_STATES, delete_run

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
