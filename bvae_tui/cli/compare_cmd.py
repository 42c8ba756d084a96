"""`bvae compare`: runs side by side, grouped by a config field, as a table, JSON, CSV or figure.

The engine does the work (bvae_tui.engine.analysis.compare, compare_table, compare_plot); this
module picks the runs, parses options and prints. numpy and the engine are imported inside the
command so `bvae --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bvae_tui.cli.common import JsonOpt, RunsDirOpt, SweepOpt, console, pick_runs, print_json
from bvae_tui.cli.main import app
from bvae_tui.safe_text import as_text, markup_safe, plain

_WHICH = "Which runs"
_HOW = "How"
_OUT = "Output"

RunsArg = Annotated[list[str] | None, typer.Argument(
    help="runs to compare: ids, unique id prefixes, names or paths (default: every run, or "
    "those --filter or --sweep pick)", show_default=False)]
FilterOpt = Annotated[str | None, typer.Option(
    "--filter", help="the runs whose id, name, state, dataset, objective or device hold every "
    "word of TEXT", show_default=False, metavar="TEXT", rich_help_panel=_WHICH)]
ByOpt = Annotated[str | None, typer.Option(
    "--by", help="config field(s) to group by, comma-separated (e.g. beta, or beta,z-dim), or "
    "'run' for no grouping (default: every field that differs between the runs except the seed)",
    show_default=False, metavar="FIELD", rich_help_panel=_HOW)]
MetricOpt = Annotated[str | None, typer.Option(
    "--metric", "-m", help="metric(s), comma-separated: eval scores (betavae, factorvae, mig) or "
    "training figures of the last row (loss, recon, kl, active) (default: the eval scores with "
    "kl and active, or the training figures when no run is scored)", show_default=False,
    metavar="NAME", rich_help_panel=_HOW)]
CurvesOpt = Annotated[bool, typer.Option(
    "--curves", help="also list every run's last loss, reconstruction, KL and active latents",
    rich_help_panel=_OUT)]
CsvOpt = Annotated[str | None, typer.Option(
    "--csv", help="write the grouped table to FILE (.csv)", show_default=False, metavar="FILE",
    rich_help_panel=_OUT)]
PlotOpt = Annotated[str | None, typer.Option(
    "--plot", help="write a figure to FILE (.png, .svg or .pdf; needs matplotlib: "
    "pip install 'bvae-tui\\[plot]')", show_default=False, metavar="FILE", rich_help_panel=_OUT)]
ProbeOpt = Annotated[str | None, typer.Option(
    "--probe", help="probed score of --plot's probe panel (runs trained with --probe-every): "
    "mig, or a factor name for the share of it its best latent carries (default: mig)",
    show_default=False, metavar="NAME", rich_help_panel=_OUT)]


def load_with_rows(runs: list) -> list:
    """The comparison data of ``runs``; runs without a metrics row yet are left out (said on
    stderr), and a one-line error when that leaves none."""
    from bvae_tui.engine.analysis.compare_runs import load_runs
    from bvae_tui.engine.errors import RunError

    data = load_runs(runs)
    empty = [r for r in data if not r.rows]
    data = [r for r in data if r.rows]
    if not data:
        names = ", ".join(r.id for r in empty[:3]) + (", ..." if len(empty) > 3 else "")
        raise RunError(f"nothing to compare: no metrics rows yet in {names}; wait until the "
                       "runs have logged (every --log-every steps)")
    if empty:
        typer.echo(plain(f"left out {len(empty)} run(s) with no metrics rows yet: "
                         + ", ".join(r.id for r in empty)), err=True)
    return data


@app.command("compare", rich_help_panel="Results")
def compare(
    runs: RunsArg = None,
    filter_text: FilterOpt = None,
    sweep: SweepOpt = None,
    by: ByOpt = None,
    metric: MetricOpt = None,
    curves: CurvesOpt = False,
    json: JsonOpt = False,
    csv: CsvOpt = None,
    plot: PlotOpt = None,
    probe: ProbeOpt = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Compare runs: each metric per group (mean ± std over its runs, n), the best group marked.

    Groups gather the runs that share the values of --by (by default, the seeds of each
    setting). Runs are named by the config fields that differ between them, e.g. β=4 seed=2.
    """
    from bvae_tui.engine.analysis.compare import group_runs, resolve_by, run_labels
    from bvae_tui.engine.analysis.compare_table import choose_metrics, score_table

    data = load_with_rows(pick_runs(runs, filter_text, runs_dir, sweep))
    fields = resolve_by(by, data)
    metrics = choose_metrics(metric, data)
    csv_path = _check_csv(csv) if csv else None
    if probe is not None and not plot:
        from bvae_tui.engine.errors import ConfigError

        raise ConfigError("--probe picks the probe panel of --plot; add --plot FILE, e.g. "
                          f"--plot compare.png --probe {probe}")
    if plot:
        from bvae_tui.engine.analysis.compare_plot import check_plot_path, choose_probe

        check_plot_path(plot)
        choose_probe(probe, data)
    groups = group_runs(data, fields)
    table = score_table(groups, metrics)
    if csv_path is not None:
        _write_csv(csv_path, table.csv_text())
    if plot:
        from bvae_tui.engine.analysis.compare_plot import write_plot

        path = write_plot(data, groups, metrics, plot, probe)
        typer.echo(plain(f"wrote {path}"), err=json)
    labels = run_labels(data)
    if json:
        out: dict[str, Any] = table.as_json()
        if curves:
            out["runs"] = [_run_json(r, label) for r, label in zip(data, labels, strict=True)]
        print_json(out)
        return
    _print_table(table, len(data))
    if curves:
        _print_runs(data, labels)


def _check_csv(path_text: str):
    from pathlib import Path

    from bvae_tui.engine.analysis.export import writable_folder
    from bvae_tui.engine.errors import RunError

    path = Path(path_text).expanduser()
    if path.suffix.lower() != ".csv":
        raise RunError(f"--csv {path} must end in .csv; e.g. --csv {path.with_suffix('.csv')}")
    if path.is_dir():
        raise RunError(f"--csv {path} is a folder; give a file name, e.g. {path}/compare.csv")
    return writable_folder(path, path.parent, "--csv")


def _write_csv(path, text: str) -> None:
    from bvae_tui.engine.atomic import atomic_path
    from bvae_tui.engine.errors import RunError

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError as exc:
        raise RunError(f"cannot write {path} ({exc.strerror or exc}); "
                       "choose another file with --csv") from None
    typer.echo(plain(f"wrote {path}"), err=True)


def _run_json(run, label: str) -> dict[str, Any]:
    return {"id": run.id, "name": run.name, "label": label, "state": run.state,
            "iteration": int(run.iters[-1]) if run.rows else None,
            **{name: run.value(name) for name in ("loss", "recon", "kl", "c", "active")},
            "scores": run.scores}


def _print_table(table, n_runs: int) -> None:
    from rich.table import Table

    from bvae_tui.engine.analysis.compare import SYMBOLS
    from bvae_tui.engine.analysis.compare_table import METRIC_LABELS

    out = console()
    if not out.is_terminal:
        out.width = 200  # piped: whole lines
    fields = table.groups[0].fields if table.groups else ()
    # Field names, group labels and metric names come from config.json and eval.json, whose
    # keys and values may hold anything: escaped, or Text, never parsed as markup.
    by = ", ".join(SYMBOLS.get(f, f) for f in fields) if fields else "run (no grouping)"
    out.print(f"[bold]{n_runs} runs[/], grouped by {markup_safe(by)}: "
              f"{len(table.groups)} groups")
    grid = Table(box=None, header_style="bold", pad_edge=False)
    grid.add_column("group", no_wrap=True)
    grid.add_column("n", justify="right")
    for metric in table.metrics:
        grid.add_column(as_text(METRIC_LABELS.get(metric, metric)), justify="right",
                        no_wrap=True)
    for gi, group in enumerate(table.groups):
        cells = []
        for metric in table.metrics:
            stat = table.stat(gi, metric)
            if stat is None:
                cells.append("[dim]-[/]")
                continue
            digits = 1 if metric in ("loss", "recon", "active") else (
                2 if metric == "kl" else 3)
            text = stat.text(digits) + (f" [dim](n={stat.n})[/]"
                                        if stat.n != len(group.runs) else "")
            cells.append(f"[bold green]{text} *[/]" if table.best.get(metric) == gi else text)
        grid.add_row(as_text(group.label), str(len(group.runs)), *cells)
    out.print(grid)
    notes = ["* best mean"] if table.best else []
    if table.without_eval:
        notes.append(f"{len(table.without_eval)} of {n_runs} runs have no eval.json "
                     "('bvae eval RUN' scores one)")
    if notes:
        out.print("[dim]" + " · ".join(notes) + "[/]")


def _print_runs(data: list, labels: list[str]) -> None:
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        out.width = 200  # piped: whole lines, as the table above
    grid = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    for col in ("run", "id", "state", "iter", "loss", "recon", "KL", "active"):
        grid.add_column(col, justify="left" if col in ("run", "id", "state") else "right",
                        no_wrap=True)

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for run, label in zip(data, labels, strict=True):
        grid.add_row(as_text(label), as_text(run.id), as_text(run.state), str(int(run.iters[-1])),
                     num(run.value("loss"), ".2f"), num(run.value("recon"), ".2f"),
                     num(run.value("kl"), ".2f"), num(run.value("active"), ".0f"))
    out.print()
    out.print(grid)
