"""`bvae runs`: list runs, show one, delete one."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bvae_tui.cli.common import JsonOpt, RunArg, RunsDirOpt, console, find_run, print_json
from bvae_tui.cli.main import app
from bvae_tui.engine.objective_info import TERM_FIELDS
from bvae_tui.safe_text import as_text, plain
from bvae_tui.styles import state_style

runs_app = typer.Typer(help="List runs; show or delete one.", no_args_is_help=False)
app.add_typer(runs_app, name="runs")


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


@runs_app.callback(invoke_without_command=True)
def runs_list(ctx: typer.Context, runs_dir: RunsDirOpt = None, json: JsonOpt = False) -> None:
    """List runs with their state, progress and latest loss."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from bvae_tui.engine.runs.store import list_runs, runs_root

    root = runs_root(runs_dir)
    if root.exists() and not root.is_dir():
        from bvae_tui.engine.errors import RunError

        raise RunError(f"runs dir {root} is a file, not a folder; choose another with "
                       "--runs-dir or BVAE_RUNS_DIR")
    rows = [r.summary() for r in list_runs(root)]
    if json:
        print_json([r.as_json() for r in rows])
        return
    out = console()
    if not rows:
        out.print(as_text(f"no runs under {root}; start one with: bvae train --dataset dsprites"))
        return
    if not out.is_terminal:
        out.width = 200  # piped: whole lines, never wrapped ids
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("ID", "STATE", "PROGRESS", "LOSS", "KL", "DEVICE", "UPDATED"):
        table.add_column(col, justify="right" if col in ("LOSS", "KL") else "left",
                         no_wrap=True, min_width=len(col) if col != "ID" else None)
    table.add_column("NOTE", no_wrap=True, overflow="ellipsis", max_width=60)
    for r in rows:
        total = r.total or 0
        pct = f" {100 * r.iteration / total:.0f}%" if total else ""
        # Cells as Text: ids, devices and notes come from run files, never parsed as markup.
        table.add_row(as_text(r.id), _state(r.state), f"{r.iteration}/{total or '?'}{pct}",
                      "-" if r.loss is None else f"{r.loss:.2f}",
                      "-" if r.kl is None else f"{r.kl:.2f}", as_text(r.device or "-"),
                      _age(r.updated), as_text(r.note))
    out.print(table)


def _state(state: str):
    """A state in its colour, as Text (a hand-edited status.json may hold any string)."""
    return as_text(state, state_style(state))


EmergenceOpt = Annotated[bool, typer.Option(
    "--emergence", help="per factor, the first probe at which one latent carried more than "
    "half of it (MI / entropy > 0.5), and which latent (needs probes: --probe-every)")]


@runs_app.command("show")
def runs_show(
    run: RunArg,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False, emergence: EmergenceOpt = False,
) -> None:
    """Show one run: config, status, latest metrics and evaluation scores."""
    from rich.text import Text

    from bvae_tui.engine.runs.records import RunRecord

    found = find_run(run, runs_dir)
    if emergence:
        _show_emergence(found, json)
        return
    summary = found.summary()
    # A damaged config.json is shown as such (the summary says why); the rest still shows.
    record = RunRecord() if summary.config_error else found.record()
    status, last, scored = found.status(), found.last_metrics(), found.eval_results()
    checkpoint = str(found.last_checkpoint) if found.last_checkpoint.exists() else None
    if json:
        print_json({**summary.as_json(), "status": status.to_dict(), "config": record.config,
                    "data_dir": record.data_dir, "dataset_source": record.dataset_source,
                    "precision": record.precision, "host": record.host,
                    "versions": record.versions,
                    "last_metrics": last.to_dict() if last else None,
                    "eval": scored.to_dict() if scored else None, "checkpoint": checkpoint,
                    "config_error": summary.config_error, "changes": record.changes})
        return
    out = console()
    # Every line is Text: ids, paths, config values and errors come from run files and the
    # user, so none of them is parsed as markup and no control character reaches the terminal.
    out.print(Text.assemble((plain(found.id), "bold"), "  ", _state(summary.state),
                            f"  {summary.iteration}/{summary.total or '?'}  ",
                            plain(found.path)))
    for problem in filter(None, (status.error, summary.config_error)):
        out.print(as_text(problem, "red"))
    if record.dataset_source:
        out.print(as_text(f"data: {record.config.get('dataset')} ({record.dataset_source}) "
                          f"from {record.data_dir}"))
    if record.precision is not None:  # written when the worker started
        from bvae_tui.engine.train.precision import describe

        out.print(as_text(f"precision: {describe(record.precision)}"))
    out.print(as_text("config: " + " ".join(f"{k}={v}" for k, v in record.config.items())))
    for change in record.changes:  # hand-edited entries may lack keys
        out.print(as_text(f"changed at iteration {change.get('iteration', '?')}: "
                          f"{change.get('field', '?')} {change.get('old')} -> "
                          f"{change.get('new')}"))
    if last:
        def num(value: float | None, fmt: str = ".3f") -> str:  # a hand-edited row may lack it
            return "-" if value is None else format(value, fmt)

        c = f" C {num(last.c, '.2f')}" if last.c is not None else ""
        out.print(as_text(f"iteration {last.iter if last.iter is not None else '-'}: "
                          f"loss {num(last.loss)} recon {num(last.recon)} KL {num(last.kl)}{c}  "
                          f"{num(last.img_per_s, '.0f')} img/s"))
        if last.kl_per_latent is not None:
            out.print(as_text("KL per latent: "
                              + " ".join(f"{v:.2f}" for v in last.kl_per_latent)))
        own = [(t, v) for t in TERM_FIELDS if (v := getattr(last, t)) is not None]
        if own:  # the objective's own terms, e.g. beta-TCVAE's mi, tc and dw_kl
            out.print(as_text("objective terms: " + " ".join(f"{t} {v:.3f}" for t, v in own)))
    if scored:  # eval.json's keys are the file's: a hand-edited one may hold anything
        out.print(as_text("eval: " + " ".join(f"{k}={v:.3f}" for k, v in scored.scores.items())))
    if checkpoint:
        out.print(as_text(f"checkpoint: {checkpoint}"))


@runs_app.command("rm")
def runs_rm(
    run: RunArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Delete a run directory (not while it is running)."""
    from bvae_tui.engine.errors import RunError
    from bvae_tui.engine.runs.store import check_deletable, delete_run

    found = find_run(run, runs_dir)
    check_deletable(found)  # asked again, under the run's lock, when deleting
    state = found.status().state
    try:
        confirmed = yes or typer.confirm(plain(f"delete run {found.id} ({state}) and all its "
                                               "files?"))
    except typer.Abort:  # end of input: nobody there to answer
        typer.echo("")
        raise RunError(f"no answer to the confirmation; pass --yes to delete {found.id}") from None
    if not confirmed:
        typer.echo("kept", err=True)
        raise typer.Exit(code=1)
    delete_run(found)
    typer.echo(plain(f"deleted {found.id}"))


def _show_emergence(run, json: bool) -> None:
    """`bvae runs show RUN --emergence`: one line per factor, in the order they emerged."""
    from bvae_tui.engine.analysis.emergence import THRESHOLD, run_emergence

    found = run_emergence(run)
    if json:
        print_json({"run": run.id, "threshold": THRESHOLD,
                    "factors": [e.to_dict() for e in found]})
        return
    out = console()
    ordered = sorted(found, key=lambda e: (e.iteration is None, e.iteration or 0))
    width = max(len(e.factor) for e in found)
    for e in ordered:
        when = ("not yet (no latent above half of it)" if e.iteration is None else
                f"iteration {e.iteration}: latent {e.latent} carries {e.share:.2f}")
        out.print(as_text(f"{e.factor:<{width}}  {when}"))
