"""`bvae sweep` (a grid of runs), `bvae sweeps`, and `bvae sweep show|stop|resume|rm|specs`.

The options of `bvae sweep` are those of `bvae train` (generated from the same schema), read as
text so that any numeric or choice field takes a list (``--beta 1,2,4``) or a range
(``--seed 1..5``); the grammar, the grid and the executors are the engine's
(:mod:`bvae_tui.engine.runs.sweeps`).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, RunsDirOpt, console, print_json
from bvae_tui.cli.main import app
from bvae_tui.cli.options import config_field_names, with_config_options
from bvae_tui.cli.sweep_view import print_grid, print_sweeps, sweep_json
from bvae_tui.safe_text import as_text, plain

SWEEP_PANEL = "Sweep"
LOCAL_PANEL = "Local executor"
SLURM_PANEL = "Slurm executor (needs the slurm extra: see the README)"

SweepArg = Annotated[str, typer.Argument(help="sweep id, unique id prefix, name, or path",
                                         show_default=False)]

sweep_app = typer.Typer(help="Train a grid of runs: every list or range given for a field "
                        "(--beta 1,2,4 --seed 1..3) is an axis of the grid.",
                        no_args_is_help=False)


def _find(ref: str, runs_dir: str | None):
    from bvae_tui.engine.runs.store import runs_root
    from bvae_tui.engine.runs.sweeps.store import find_sweep

    return find_sweep(runs_root(runs_dir), ref)


# --------------------------------------------------------------------------------------------
# bvae sweep [options]


def _executor_settings(values: dict[str, Any]):
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.sweeps.spec import (
        ExecutorSettings,
        SlurmSettings,
        parse_time,
        slurm_args,
    )

    gpus = values.pop("gpus")
    if gpus is not None:
        if gpus.strip().lower() == "all":
            gpus = None
        else:
            try:
                gpus = [int(g) for g in gpus.split(",") if g.strip()]
            except ValueError:
                raise ConfigError(f"--gpus takes GPU numbers (0,1) or all; got {gpus!r}") from None
    args = {}
    for item in values.pop("slurm_arg") or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--slurm-arg takes KEY=VALUE (an sbatch option); got {item!r}")
        args[key.strip().lstrip("-")] = value.strip()
    args = slurm_args(args)  # checked here: each becomes an #SBATCH line of a shell script
    time_limit = values.pop("time")
    slurm = SlurmSettings(partition=values.pop("partition"),
                          time=parse_time(time_limit) if time_limit is not None else None,
                          gpus_per_node=values.pop("gpus_per_node"), mem=values.pop("mem"),
                          array_parallelism=values.pop("array_parallelism"), args=args)
    return ExecutorSettings(kind=values.pop("executor"), gpus=gpus, per_gpu=values.pop("per_gpu"),
                            slots=values.pop("slots"), slurm=slurm)


def sweep_command(ctx: typer.Context, **values: Any) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from bvae_tui.engine.runs.sweeps import control
    from bvae_tui.engine.runs.sweeps.spec import SweepSpec, load_spec, parse_field_values

    executor = _executor_settings(values)
    spec_ref, yes, as_json = values.pop("spec"), values.pop("yes"), values.pop("json")
    dry_run = values.pop("dry_run")
    runs_dir, data_dir = values.pop("runs_dir"), values.pop("data_dir")
    given = {k: v for k, v in values.items() if k in config_field_names() and v is not None}
    cli = SweepSpec(values=parse_field_values(given), preset=values.pop("preset"),
                    name=values.pop("name"), executor=executor)
    spec = load_spec(spec_ref).merged(cli) if spec_ref else cli
    if spec.preset:
        from bvae_tui.engine.config import preset

        preset(spec.preset)  # an unknown preset is one line before anything else
    if dry_run:
        _dry_run(spec, spec_ref, data_dir, as_json)
        return
    if spec.parts:
        _create_study(spec, runs_dir, data_dir, yes, as_json)
        return
    sweep, plan = control.create(spec, runs_dir, data_dir, yes=yes)
    if as_json:
        print_json(sweep_json(sweep))
        return
    for note in plan.notes:
        if note.startswith("warning:"):
            typer.echo(plain(note), err=True)
    where = next((n for n in plan.notes if not n.startswith("warning:")), plan.executor)
    typer.echo(plain(f"sweep {sweep.id}: {plan.count} members ({' x '.join(spec.axes)}) "
                     f"{where if plan.executor == 'local' else 'on Slurm'}"))
    typer.echo(plain(f"follow it with: bvae sweep show {sweep.id}   (or bvae-tui)"))


def _dry_run(spec: Any, spec_ref: str | None, data_dir: str | None, as_json: bool) -> None:
    from bvae_tui.engine.runs.sweeps.dry_run import describe, plan_dry_run

    result = plan_dry_run(spec, data_dir)
    if as_json:
        print_json(result.as_json())
        return
    for line in describe(result, spec_ref or "the sweep"):
        typer.echo(plain(line))


def _create_study(spec: Any, runs_dir: str | None, data_dir: str | None, yes: bool,
                  as_json: bool) -> None:
    """A study: every part checked first (nothing is created if one is wrong), then each
    created and started as its own sweep."""
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.sweeps import control
    from bvae_tui.engine.runs.sweeps.grid import MAX_MEMBERS

    total = spec.count()
    if total > MAX_MEMBERS and not yes:  # each part may be small; the study is not
        raise ConfigError(f"the study has {total:,} members in {len(spec.parts)} sweeps, more "
                          f"than {MAX_MEMBERS:,}; pass --yes to create them all, or narrow it "
                          "(--dataset, --seed)")
    parts = spec.sweeps()
    for part in parts:
        control.plan(part, runs_dir, data_dir, yes=yes)
    made = [control.create(part, runs_dir, data_dir, yes=yes) for part in parts]
    if as_json:
        print_json([sweep_json(sweep) for sweep, _ in made])
        return
    for sweep, plan in made:
        typer.echo(plain(f"sweep {sweep.id}: {plan.count} members "
                         f"({' x '.join(plan.spec.axes)})"))
    typer.echo(plain(f"{len(made)} sweeps, {sum(p.count for _, p in made):,} members; follow "
                     "them with: bvae sweeps   (or bvae-tui)"))


_SWEEP_EXTRA = [
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                        annotation=annotation) for name, default, annotation in (
        ("spec", None, Annotated[str | None, typer.Option(
            "--spec", help="a spec file (TOML), or builtin:NAME ('bvae sweep specs' lists "
            "them); options given here override it", rich_help_panel=SWEEP_PANEL,
            show_default=False, metavar="FILE|builtin:NAME")]),
        ("preset", None, Annotated[str | None, typer.Option(
            "--preset", help="start every member from a paper setting (as bvae train)",
            rich_help_panel=SWEEP_PANEL, show_default=False)]),
        ("name", None, Annotated[str | None, typer.Option(
            "--name", help="sweep name (part of its id and of each member's name)",
            rich_help_panel=SWEEP_PANEL, show_default=False)]),
        ("yes", False, Annotated[bool, typer.Option(
            "--yes", "-y", help="create grids of more than 10,000 members too",
            rich_help_panel=SWEEP_PANEL)]),
        ("dry_run", False, Annotated[bool, typer.Option(
            "--dry-run", help="print the member count and the estimated training time (from "
            "this machine's `bvae bench` figures); create nothing", rich_help_panel=SWEEP_PANEL)]),
        ("executor", None, Annotated[str | None, typer.Option(
            "--executor", help="local (a scheduler on this machine; default) or slurm",
            rich_help_panel=SWEEP_PANEL, show_default=False, metavar="local|slurm")]),
        ("gpus", None, Annotated[str | None, typer.Option(
            "--gpus", help="GPUs to place members on, as 'bvae gpus' numbers them "
            "(default: every GPU NVML sees, else the CPU)", rich_help_panel=LOCAL_PANEL,
            show_default=False, metavar="0,1,…|all")]),
        ("per_gpu", None, Annotated[int | None, typer.Option(
            "--per-gpu", help="members at once per GPU (default 1; a start also waits for "
            "free memory)", rich_help_panel=LOCAL_PANEL, show_default=False)]),
        ("slots", None, Annotated[int | None, typer.Option(
            "--slots", help="members at once on the CPU (with --device cpu; default 1)",
            rich_help_panel=LOCAL_PANEL, show_default=False)]),
        ("partition", None, Annotated[str | None, typer.Option(
            "--partition", help="Slurm partition", rich_help_panel=SLURM_PANEL,
            show_default=False)]),
        ("time", None, Annotated[str | None, typer.Option(
            "--time", help="time limit per job: minutes or H:MM:SS (default 24:00:00); a "
            "job at its limit checkpoints and is requeued", rich_help_panel=SLURM_PANEL,
            show_default=False)]),
        ("gpus_per_node", None, Annotated[int | None, typer.Option(
            "--gpus-per-node", help="GPUs per job (0: train on the CPU)",
            rich_help_panel=SLURM_PANEL, show_default=False)]),
        ("mem", None, Annotated[str | None, typer.Option(
            "--mem", help="memory per job, e.g. 16G", rich_help_panel=SLURM_PANEL,
            show_default=False)]),
        ("array_parallelism", None, Annotated[int | None, typer.Option(
            "--array-parallelism", help="members running at once (the array's %N)",
            rich_help_panel=SLURM_PANEL, show_default=False)]),
        ("slurm_arg", None, Annotated[list[str] | None, typer.Option(
            "--slurm-arg", help="any other sbatch option as KEY=VALUE (repeatable), e.g. "
            "account=myproj", rich_help_panel=SLURM_PANEL, show_default=False)]),
        ("runs_dir", None, RunsDirOpt),
        ("data_dir", None, DataDirOpt),
        ("json", False, JsonOpt),
    )),
]

sweep_app.callback(invoke_without_command=True)(
    with_config_options(sweep_command, _SWEEP_EXTRA, lists=True))
app.add_typer(sweep_app, name="sweep")


# --------------------------------------------------------------------------------------------
# bvae sweeps, bvae sweep show / stop / resume / rm / specs


@app.command("sweeps")
def sweeps_list(runs_dir: RunsDirOpt = None, json: JsonOpt = False) -> None:
    """List sweeps: members finished / running / queued / failed."""
    from bvae_tui.engine.runs.store import runs_root
    from bvae_tui.engine.runs.sweeps.store import list_sweeps

    root = runs_root(runs_dir)
    summaries = [s.summary() for s in list_sweeps(root)]
    if json:
        print_json([s.as_json() for s in summaries])
        return
    print_sweeps(summaries, root)


@sweep_app.command("show")
def sweep_show(
    sweep: SweepArg,
    score: Annotated[str | None, typer.Option(
        help="what the cells show beside the state: loss, betavae, factorvae or mig "
        "(default: a metric once members are scored, else the loss)")] = None,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False,
) -> None:
    """Show a sweep: its members as a grid (state, progress, device, score) and its queue."""
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.sweeps.table import SCORES

    if score is not None and score not in SCORES:
        raise ConfigError(f"--score must be one of {', '.join(SCORES)}; got {score!r}")
    found = _find(sweep, runs_dir)
    if json:
        print_json(sweep_json(found))
        return
    print_grid(found, score)


@sweep_app.command("stop")
def sweep_stop(
    sweep: SweepArg,
    member: Annotated[str | None, typer.Option(
        help="stop only this member (run id, or its place: beta=4,seed=2)")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for checkpoints")] = 30.0,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False,
) -> None:
    """Stop a sweep (running members checkpoint; queued ones stay unstarted), or one member."""
    from bvae_tui.engine.runs.sweeps import control

    found = _find(sweep, runs_dir)
    if member is not None:
        run = found.member(member)
        control.stop_member(run, wait)
        _done(json, found, f"{run.id}: {run.status().state}", members=[run.id])
        return
    asked = control.stop(found, wait)
    summary = found.summary()
    still = sum(1 for r in asked if r.status().active)
    _done(json, found, f"{found.id}: {summary.state} ({summary.counts})"
          + (f"; {still} member(s) still finishing their step" if still else ""),
          members=[r.id for r in asked])


def _done(as_json: bool, sweep: Any, line: str, **fields: Any) -> None:
    """What stop / resume print: a line, or the sweep's summary and ``fields`` as JSON."""
    if as_json:
        print_json({**sweep.summary().as_json(), **fields})
    else:
        typer.echo(plain(line))  # names the sweep and its members


@sweep_app.command("resume")
def sweep_resume(
    sweep: SweepArg,
    member: Annotated[str | None, typer.Option(
        help="resume only this member (run id, or its place: beta=4,seed=2)")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="start failed members again too (from their checkpoints)")] = False,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False,
) -> None:
    """Continue a stopped or lost sweep (running members adopted, others from checkpoints)."""
    from bvae_tui.engine.runs.sweeps import control

    found = _find(sweep, runs_dir)
    if member is not None:
        run = found.member(member)
        control.resume_member(found, run)
        _done(json, found, f"{run.id}: queued again in {found.id}", members=[run.id])
        return
    again = control.resume(found, retry_failed)
    summary = found.summary()
    _done(json, found, f"{found.id}: {summary.state}; {len(again)} member(s) queued again "
          f"({summary.counts})", members=[r.id for r in again])


@sweep_app.command("rm")
def sweep_rm(
    sweep: SweepArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    keep_runs: Annotated[bool, typer.Option(
        "--keep-runs", help="delete only the sweep, keep its members as plain runs")] = False,
    runs_dir: RunsDirOpt = None, json: JsonOpt = False,
) -> None:
    """Delete a sweep and its member runs (not while it runs)."""
    from bvae_tui.engine.errors import SweepError
    from bvae_tui.engine.runs.sweeps import control

    found = _find(sweep, runs_dir)
    what = "the sweep record" if keep_runs else f"its {len(found.deletable_members())} member runs"
    try:
        confirmed = yes or typer.confirm(plain(f"delete sweep {found.id} and {what}?"))
    except typer.Abort:
        typer.echo("")
        raise SweepError(f"no answer to the confirmation; pass --yes to delete {found.id}") \
            from None
    if not confirmed:
        typer.echo("kept", err=True)
        raise typer.Exit(code=1)
    removed = control.remove(found, keep_runs)
    if json:
        print_json({"id": found.id, "deleted": True, "runs_deleted": removed})
        return
    typer.echo(plain(f"deleted {found.id}" + (f" and {removed} member runs" if removed else "")))


@sweep_app.command("specs")
def sweep_specs(
    name: Annotated[str | None, typer.Argument(help="print this spec's file", show_default=False)]
    = None,
    json: JsonOpt = False,
) -> None:
    """List the built-in specs (bvae sweep --spec builtin:NAME), or print one."""
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.sweeps.spec import builtin_specs, load_spec

    specs = builtin_specs()
    if name is not None:
        if name not in specs:
            raise ConfigError(f"no built-in spec '{name}'; built-in: {', '.join(sorted(specs))}")
        typer.echo(specs[name].read_text(), nl=False)
        return
    rows = []
    for key in sorted(specs):
        spec = load_spec(f"builtin:{key}")
        rows.append({"name": key, "members": spec.count(), "axes": spec.axes,
                     "description": spec.description or ""})
    if json:
        print_json(rows)
        return
    out = console()
    for row in rows:
        out.print(as_text(f"builtin:{row['name']}", "bold"),
                  as_text(f" {row['members']} members ({' x '.join(row['axes'])})  "
                          f"{row['description']}"))
