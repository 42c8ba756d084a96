"""`bvae eval RUN`, `bvae eval --baseline NAME` and `bvae eval --udr RUN...`: disentanglement
scores (BetaVAE, FactorVAE, MIG, DCI, SAP, modularity, explicitness) and UDR over a group of runs.

The engine does the work (bvae_tui.engine.analysis.evaluate, .udr_eval); this module parses
options, shows progress on stderr and prints tables (:mod:`.eval_tables`) or JSON. torch, sklearn
and the engine are imported inside the command so `bvae --help` stays fast."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, RunsDirOpt, console, find_run, print_json
from bvae_tui.cli.main import app
from bvae_tui.safe_text import as_text, markup_safe

_WHAT = "What to score"
_HOW = "Sampling"
_BASE = "Baselines"
_UDR = "UDR (no factors needed)"

RunsArg = Annotated[list[str] | None, typer.Argument(
    help="run id, unique id prefix, name, or path (omit with --baseline; several with --udr)",
    show_default=False)]
MetricsOpt = Annotated[str | None, typer.Option(
    "--metrics", "-m", help="comma-separated subset of betavae,factorvae,mig,dci,sap,"
    "modularity,explicitness (default: all)", show_default=False, rich_help_panel=_WHAT)]
FastOpt = Annotated[bool, typer.Option(
    "--fast", help="about a tenth of the samples: a quick, noisier look (recorded in eval.json)",
    rich_help_panel=_HOW)]
ExactOpt = Annotated[bool, typer.Option(
    "--exact", help="disentanglement_lib's own procedure: BetaVAE/FactorVAE batches from the "
    "whole dataset, DCI on GradientBoostingClassifier (same definitions; several times slower "
    "on a CPU; recorded in eval.json)", rich_help_panel=_HOW)]
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
ImageSizeOpt = Annotated[int, typer.Option(
    "--image-size", help="image side of the baseline's dataset: 32, 64 or 128 (a run is scored "
    "at its own size)", rich_help_panel=_BASE)]
UdrOpt = Annotated[bool, typer.Option(
    "--udr", help="score the RUNs with UDR (Duan et al. 2020): a group trained with the same "
    "settings and different seeds, ranked by how alike their latents are; writes each run's "
    "eval.json", rich_help_panel=_UDR)]
UdrPointsOpt = Annotated[int, typer.Option(
    "--udr-points", help="images every run of the group encodes", rich_help_panel=_UDR)]
SweepOpt = Annotated[str | None, typer.Option(
    "--sweep", help="with --udr: UDR over each group of the sweep's members that differ only in "
    "seed (id, prefix or name)", show_default=False, rich_help_panel=_UDR)]
DetachOpt = Annotated[bool, typer.Option(
    "--detach", help="score in a background process that outlives this terminal (several "
    "RUNs: one after another) and return at once; progress in 'bvae runs' and the TUI, "
    "eval.json written as without it", rich_help_panel=_WHAT)]
CorrelationOpt = Annotated[str, typer.Option(
    "--correlation", help="UDR's latent similarity: lasso or spearman", rich_help_panel=_UDR)]


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


@app.command("eval", rich_help_panel="Results")
def eval_command(
    runs: RunsArg = None,
    metrics: MetricsOpt = None,
    fast: FastOpt = False,
    exact: ExactOpt = False,
    seed: SeedOpt = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    baseline: BaselineOpt = None,
    dataset: DatasetOpt = "dsprites",
    arch: ArchOpt = "H",
    z_dim: ZDimOpt = 10,
    image_size: ImageSizeOpt = 64,
    udr: UdrOpt = False,
    udr_points: UdrPointsOpt = 1000,
    correlation: CorrelationOpt = "lasso",
    sweep: SweepOpt = None,
    detach: DetachOpt = False,
    json_out: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Score disentanglement (disentanglement_lib's metrics and settings).

    With RUN: scores the run's checkpoint and writes RUN/eval.json.

    With --baseline: scores ground truth, raw pixels, PCA or an untrained network (printed).

    With --udr RUN RUN...: UDR of each run of a group that differs only in seed (works without
    ground-truth factors, e.g. on CelebA); writes each run's eval.json. With --udr --sweep
    SWEEP: the same for each group of the sweep's members that differ only in seed.
    """
    from bvae_tui.engine.errors import ConfigError

    refs = runs or []
    if detach:
        return _detach(refs, metrics, fast, seed, device, json_out, runs_dir,
                       exact or checkpoint is not None or baseline is not None or udr)
    if sweep is not None and not udr:
        raise ConfigError("--sweep scores a sweep's groups of seeds with UDR; add --udr")
    if udr:
        if exact or fast:
            raise ConfigError("--exact and --fast choose the factor metrics' samples; UDR has "
                              "its own (--udr-points): drop them")
        if baseline is not None:
            raise ConfigError("--udr scores runs, not a baseline; drop --baseline")
        if sweep is not None:
            if refs:
                raise ConfigError("give RUNs or --sweep, not both")
            return _udr_sweep(sweep, udr_points, seed, correlation, device, json_out, runs_dir)
        return _udr(refs, udr_points, seed, correlation, device, json_out, runs_dir)
    if (not refs) == (baseline is None):
        raise ConfigError("give either a RUN to score or --baseline NAME --dataset DATASET, "
                          "not both (e.g. bvae eval --baseline pca --dataset dsprites)")
    if len(refs) > 1:
        raise ConfigError(f"bvae eval scores one run at a time (got {len(refs)}); for UDR over "
                          "a group of seeds add --udr")
    if refs and image_size != 64:
        raise ConfigError("--image-size sets a baseline's images; a run is scored at the size "
                          "it was trained at: drop --image-size")
    note, close = (None, lambda: None) if json_out else _progress()
    try:
        if refs:
            from bvae_tui.engine.analysis.evaluate import evaluate_run
            target = find_run(refs[0], runs_dir)
            _not_being_evaluated(target)
            result = evaluate_run(target, metrics=metrics, fast=fast, seed=seed, device=device,
                                  checkpoint=checkpoint, progress=note, exact=exact)
        else:
            from bvae_tui.engine.analysis.baselines import BASELINES, canonical
            from bvae_tui.engine.analysis.evaluate import evaluate_baseline

            names = list(BASELINES) if baseline.strip().lower() == "all" else [
                canonical(baseline)]
            results = [evaluate_baseline(name, dataset, data_dir=data_dir, metrics=metrics,
                                         fast=fast, seed=seed, device=device, arch=arch,
                                         z_dim=z_dim, progress=note, exact=exact,
                                         image_size=image_size)
                       for name in names]
    finally:
        close()

    from bvae_tui.cli import eval_tables

    if refs:
        if json_out:
            print_json(result)
            return
        title = (f"{target.id} @ iteration {result['iteration']} on {result['dataset']}"
                 f"{_mode(fast, exact)}")
        out = console()
        out.print(eval_tables.run_table(result, title))
        info = eval_tables.mi_table(result)
        if info is not None:
            out.print(info)
        out.print(as_text(f"{result['seconds']:.0f} s on {result['device']}, "
                          f"{result['encoded']:,} images encoded, seed {seed}; "
                          f"saved {target.eval_path}", "dim"))
        return
    if json_out:
        print_json(results if len(results) > 1 else results[0])
        return
    title = f"baselines on {dataset}{_mode(fast, exact)}"
    console().print(eval_tables.baseline_table(results, title))


def _not_being_evaluated(run: Any) -> None:
    """A one-line refusal while a detached evaluation scores the same run: both would write
    its eval.json."""
    from bvae_tui.engine.errors import RunError
    from bvae_tui.engine.runs.lock import lock_holder
    from bvae_tui.engine.runs.records import EVAL_LOCK_FILE

    pid = lock_holder(run, EVAL_LOCK_FILE)
    if pid is not None:
        raise RunError(f"run {run.id} is already being evaluated (pid {pid}); wait for it to "
                       "finish ('bvae runs' shows its progress)")


def _detach(refs: list[str], metrics: str | None, fast: bool, seed: int, device: str | None,
            json_out: bool, runs_dir: str | None, unsupported: bool) -> None:
    """`bvae eval RUN... --detach`: the TUI's evaluate, from the command line."""
    from bvae_tui.engine.errors import ConfigError
    from bvae_tui.engine.runs.eval_job import launch_eval

    if unsupported:
        raise ConfigError("--detach scores runs' last checkpoints (with --fast, --metrics, "
                          "--seed, --device); drop --exact, --checkpoint, --baseline and --udr, "
                          "or run without --detach")
    if not refs:
        raise ConfigError("give the RUN(s) to score in the background, e.g. "
                          "bvae eval RUN --detach")
    started = launch_eval([find_run(ref, runs_dir) for ref in refs], fast=fast,
                          metrics=metrics, seed=seed, device=device)
    if json_out:
        print_json({"pid": started.pid, "runs": [r.id for r in started.runs],
                    "refused": started.refused})
        return
    out = console()
    ids = ", ".join(r.id for r in started.runs)
    out.print(as_text(f"evaluating {ids} in the background (pid {started.pid}"
                      f"{', fast' if fast else ''}); 'bvae runs' shows the progress"))
    for line in started.refused:
        out.print(as_text(f"left out: {line}", "yellow"))


def _mode(fast: bool, exact: bool) -> str:
    """What a results title says about how the samples were drawn."""
    return "".join(["  (FAST: reduced samples)" if fast else "",
                    "  (EXACT: disentanglement_lib's draws and trees)" if exact else ""])


def _udr(refs: list[str], points: int, seed: int, correlation: str, device: str | None,
         json_out: bool, runs_dir: str | None) -> None:
    from bvae_tui.engine.analysis.udr_eval import evaluate_udr

    group = [find_run(ref, runs_dir) for ref in refs]
    note, close = (None, lambda: None) if json_out else _progress()
    try:
        result = evaluate_udr(group, num_points=points, seed=seed, correlation=correlation,
                              device=device, progress=note)
    finally:
        close()
    if json_out:
        print_json(result)
        return
    from bvae_tui.cli import eval_tables

    out = console()
    out.print(eval_tables.udr_table(result))
    out.print(f"[dim]{result['seconds']:.0f} s; {_UDR_NOTE}[/dim]")


_UDR_NOTE = ("higher is more disentangled (a group ranks its own seeds; compare groups with "
             "care); saved in each run's eval.json")


def _udr_sweep(ref: str, points: int, seed: int, correlation: str, device: str | None,
               json_out: bool, runs_dir: str | None) -> None:
    from bvae_tui.engine.analysis.udr_eval import evaluate_udr, sweep_groups
    from bvae_tui.engine.runs.store import runs_root
    from bvae_tui.engine.runs.sweeps.store import find_sweep

    found = find_sweep(runs_root(runs_dir), ref)
    groups, notes = sweep_groups(found)
    note, close = (None, lambda: None) if json_out else _progress()
    try:
        results = [{"group": key, **evaluate_udr(group, num_points=points, seed=seed,
                                                 correlation=correlation, device=device,
                                                 progress=note)}
                   for key, group in groups]
    finally:
        close()
    if json_out:
        print_json({"sweep": found.id, "groups": results, "left_out": notes})
        return
    from bvae_tui.cli import eval_tables

    out = console()
    for result in results:
        out.print(eval_tables.udr_table(result, group=result["group"]))
    for line in notes:  # they name member runs
        out.print(as_text(f"left out: {line}", "yellow"))
    out.print(f"[dim]sweep {markup_safe(found.id)}, {len(results)} group(s); {_UDR_NOTE}[/dim]")
