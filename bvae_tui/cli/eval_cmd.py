"""`bvae eval RUN` and `bvae eval --baseline NAME`: BetaVAE, FactorVAE and MIG scores.

The engine does the work (bvae_tui.engine.analysis.evaluate); this module parses options, shows
progress on stderr and prints a table (or JSON). torch, sklearn and the engine are imported inside
the command so `bvae --help` stays fast."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, RunsDirOpt, console, find_run, print_json
from bvae_tui.cli.main import app

_WHAT = "What to score"
_HOW = "Sampling"
_BASE = "Baselines"

RunArg = Annotated[str | None, typer.Argument(
    help="run id, unique id prefix, name, or path (omit with --baseline)", show_default=False)]
MetricsOpt = Annotated[str, typer.Option(
    "--metrics", "-m", help="comma-separated subset of betavae,factorvae,mig",
    rich_help_panel=_WHAT)]
FastOpt = Annotated[bool, typer.Option(
    "--fast", help="about a tenth of the samples: a quick, noisier look (recorded in eval.json)",
    rich_help_panel=_HOW)]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="seed of the metrics' sampling (same seed, same scores)",
    rich_help_panel=_HOW)]
CheckpointOpt = Annotated[str | None, typer.Option(
    "--checkpoint", help="checkpoint file (name in RUN/checkpoints/ or a path) (default: last)",
    show_default=False, rich_help_panel=_WHAT)]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="cpu, cuda:N or auto (default: the run's device; auto for baselines)",
    show_default=False, rich_help_panel=_HOW)]
BaselineOpt = Annotated[str | None, typer.Option(
    "--baseline", help="score a baseline instead of a run: ground-truth, pixels, pca, "
    "untrained, or all", show_default=False, rich_help_panel=_BASE)]
DatasetOpt = Annotated[str, typer.Option(
    "--dataset", help="dataset of the baseline (one with ground-truth factors)",
    rich_help_panel=_BASE)]
ArchOpt = Annotated[str, typer.Option(
    "--arch", help="architecture of the untrained baseline network (H or B)",
    rich_help_panel=_BASE)]
ZDimOpt = Annotated[int, typer.Option(
    "--z-dim", help="latents of the untrained baseline network", rich_help_panel=_BASE)]


def _progress():
    """A stderr progress callback (silent when stderr is not a terminal) and its closer."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"
                   "/{task.total}"), TimeElapsedColumn(), console=Console(stderr=True),
                   transient=True)
    tasks: dict[str, Any] = {}
    bar.start()

    def note(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return note, bar.stop


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _run_table(result: dict[str, Any], title: str):
    from rich.table import Table

    from bvae_tui.engine.analysis.metrics import TITLES
    from bvae_tui.engine.analysis.papers import PAPER_BETAVAE

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("train acc.", justify="right")
    table.add_column("notes")
    for name, value in result["scores"].items():
        d = result["details"].get(name, {})
        if name == "betavae":
            # The paper's numbers are for full dSprites only; elsewhere they would mislead.
            note = (f"paper: VAE {PAPER_BETAVAE['VAE']:.3f}, "
                    f"beta-VAE {PAPER_BETAVAE['beta-VAE']:.3f}"
                    if result.get("dataset") == "dsprites" else "")
            if d.get("converged") is False:
                note = "; ".join(filter(None, [note, "classifier did not converge"]))
        elif name == "factorvae":
            note = f"{d.get('num_active_dims', '?')} active latents"
        else:
            note = ", ".join(f"{k} {v:.2f}" for k, v in d.get("per_factor", {}).items())
        table.add_row(TITLES[name], _fmt(value), _fmt(d.get("train_accuracy")), note)
    return table


def _baseline_table(results: list[dict[str, Any]], title: str):
    from rich.table import Table

    from bvae_tui.engine.analysis.baselines import TITLES as BASE_TITLES
    from bvae_tui.engine.analysis.metrics import METRICS, TITLES
    from bvae_tui.engine.analysis.papers import PAPER_BETAVAE

    table = Table(title=title, title_justify="left")
    table.add_column("representation")
    shown = [m for m in METRICS if any(m in r["scores"] for r in results)]
    for m in shown:
        table.add_column(TITLES[m], justify="right")
    table.add_column("paper BetaVAE", justify="right")
    table.add_column("seconds", justify="right")
    for r in results:
        label = BASE_TITLES[r["baseline"]]
        table.add_row(label, *(_fmt(r["scores"].get(m)) for m in shown),
                      _fmt(PAPER_BETAVAE.get(label)), f"{r['seconds']:.0f}")
    return table


@app.command("eval", rich_help_panel="Results")
def eval_command(
    run: RunArg = None,
    metrics: MetricsOpt = "betavae,factorvae,mig",
    fast: FastOpt = False,
    seed: SeedOpt = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    baseline: BaselineOpt = None,
    dataset: DatasetOpt = "dsprites",
    arch: ArchOpt = "H",
    z_dim: ZDimOpt = 10,
    json_out: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Score disentanglement (BetaVAE, FactorVAE, MIG; disentanglement_lib's settings).

    With RUN: scores the run's checkpoint and writes RUN/eval.json.

    With --baseline: scores ground truth, raw pixels, PCA or an untrained network (printed).
    """
    from bvae_tui.engine.errors import ConfigError

    if (run is None) == (baseline is None):
        raise ConfigError("give either a RUN to score or --baseline NAME --dataset DATASET, "
                          "not both (e.g. bvae eval --baseline pca --dataset dsprites)")
    note, close = (None, lambda: None) if json_out else _progress()
    try:
        if run is not None:
            from bvae_tui.engine.analysis.evaluate import evaluate_run
            target = find_run(run, runs_dir)
            result = evaluate_run(target, metrics=metrics, fast=fast, seed=seed, device=device,
                                  checkpoint=checkpoint, progress=note)
        else:
            from bvae_tui.engine.analysis.baselines import BASELINES, canonical
            from bvae_tui.engine.analysis.evaluate import evaluate_baseline

            names = list(BASELINES) if baseline.strip().lower() == "all" else [
                canonical(baseline)]
            results = [evaluate_baseline(name, dataset, data_dir=data_dir, metrics=metrics,
                                         fast=fast, seed=seed, device=device, arch=arch,
                                         z_dim=z_dim, progress=note) for name in names]
    finally:
        close()

    if run is not None:
        if json_out:
            print_json(result)
            return
        title = (f"{target.id} @ iteration {result['iteration']} on {result['dataset']}"
                 f"{'  (FAST: reduced samples)' if fast else ''}")
        out = console()
        out.print(_run_table(result, title))
        out.print(f"[dim]{result['seconds']:.0f} s on {result['device']}, "
                  f"{result['encoded']:,} images encoded, seed {seed}; "
                  f"saved {target.eval_path}[/dim]")
        return
    if json_out:
        print_json(results if len(results) > 1 else results[0])
        return
    title = f"baselines on {dataset}{'  (FAST: reduced samples)' if fast else ''}"
    console().print(_baseline_table(results, title))
