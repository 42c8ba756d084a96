"""`bvae export gif|png|recon|mi RUN`, `bvae export csv|tensorboard RUN...`: traversal GIFs
and grids, reconstruction grids, the latent x factor information heat map; metrics rows as CSV or
TensorBoard event files.

The engine does the work (bvae_tui.engine.analysis.export); this module only parses options.
torch and the engine are imported inside the commands so `bvae --help` stays fast. The paths
written are printed through :func:`~bvae_tui.safe_text.plain`: a run folder's name may hold
control characters, which must not reach the terminal.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bvae_tui.cli.common import DataDirOpt, RunArg, RunsDirOpt, SweepOpt, find_run, pick_runs
from bvae_tui.cli.main import app
from bvae_tui.safe_text import plain

export_app = typer.Typer(
    help="Export latent traversals (GIF, PNG grid) and reconstructions from a run's checkpoint, "
    "its evaluation's information heat map; metrics and probes as CSV or TensorBoard event "
    "files.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export", rich_help_panel="Results")

_SRC = "Source"
_TRAV = "Traversal"

OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", help="output file or folder (default: RUN/exports/)", show_default=False)]
ImagesOpt = Annotated[str | None, typer.Option(
    "--images", help="dataset indices of the fixed images, e.g. 0,500,9000 "
    "(default: dSprites one square, ellipse, heart; else seeded choices)",
    show_default=False, rich_help_panel=_TRAV)]
LimitOpt = Annotated[float, typer.Option(
    "--limit", help="sweep each latent over [-limit, limit]", rich_help_panel=_TRAV)]
StepsOpt = Annotated[int, typer.Option(
    "--steps", help="values per sweep (columns / frames)", rich_help_panel=_TRAV)]
OrderOpt = Annotated[str, typer.Option(
    "--order", help="row order: kl (most informative first) or natural",
    rich_help_panel=_TRAV)]
RandomOpt = Annotated[bool, typer.Option(
    "--random", help="start from codes drawn from N(0, I) instead of encoded images",
    rich_help_panel=_TRAV)]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="seed for image choice and random codes", rich_help_panel=_TRAV)]
CheckpointOpt = Annotated[str | None, typer.Option(
    "--checkpoint", help="checkpoint file: a name in RUN/checkpoints/ or a path (default: last.pt)",
    show_default=False, rich_help_panel=_SRC)]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="cpu, cuda:N or auto (cpu works for runs trained on a GPU)",
    rich_help_panel=_SRC)]


def _indices(text: str | None) -> list[int] | None:
    """Parse '1,2,3' into ints; a malformed list is a one-line error."""
    if text is None:
        return None
    from bvae_tui.engine.errors import ConfigError

    try:
        out = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ConfigError(f"--images takes comma-separated indices, e.g. 0,500,9000; "
                          f"got {text!r}") from None
    if not out:
        raise ConfigError("--images needs at least one index, e.g. --images 0,500,9000")
    return out


@export_app.command("gif")
def gif(
    run: RunArg,
    output: OutputOpt = None,
    images: ImagesOpt = None,
    limit: LimitOpt = 3.0,
    steps: StepsOpt = 10,
    fps: Annotated[float, typer.Option("--fps", help="frames per second",
                                       rich_help_panel=_TRAV)] = 5.0,
    order: OrderOpt = "kl",
    random: RandomOpt = False,
    seed: SeedOpt = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "cpu",
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Animated traversal: every latent steps through the values at once; loops forever."""
    from bvae_tui.engine.analysis.export import export_gif

    path = export_gif(find_run(run, runs_dir), output=output, images=_indices(images), limit=limit,
                      steps=steps, fps=fps, checkpoint=checkpoint, order=order, random=random,
                      seed=seed, device=device, data_dir=data_dir)
    typer.echo(plain(path))


@export_app.command("png")
def png(
    run: RunArg,
    output: OutputOpt = None,
    images: ImagesOpt = None,
    limit: LimitOpt = 3.0,
    steps: StepsOpt = 10,
    order: OrderOpt = "kl",
    random: RandomOpt = False,
    seed: SeedOpt = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "cpu",
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Traversal grid: rows = latents (KL beside each), columns = values, a panel per image."""
    from bvae_tui.engine.analysis.export import export_png

    path = export_png(find_run(run, runs_dir), output=output, images=_indices(images), limit=limit,
                      steps=steps, checkpoint=checkpoint, order=order, random=random, seed=seed,
                      device=device, data_dir=data_dir)
    typer.echo(plain(path))


@export_app.command("recon")
def recon(
    run: RunArg,
    output: OutputOpt = None,
    images: ImagesOpt = None,
    n: Annotated[int, typer.Option("-n", "--count", min=1, max=64,
                                   help="images when --images is not given")] = 8,
    seed: SeedOpt = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "cpu",
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Reconstruction grid: the fixed images above their reconstructions."""
    from bvae_tui.engine.analysis.export import export_recon

    path = export_recon(find_run(run, runs_dir), output=output, images=_indices(images), n=n,
                        seed=seed, checkpoint=checkpoint, device=device, data_dir=data_dir)
    typer.echo(plain(path))


@export_app.command("mi")
def mi(
    run: RunArg,
    output: OutputOpt = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Heat map of the latent x factor information (MI / factor entropy) from RUN/eval.json:
    which latent carries which factor. Needs 'bvae eval RUN' first."""
    from bvae_tui.engine.analysis.export import export_mi

    typer.echo(plain(export_mi(find_run(run, runs_dir), output=output)))


RunsArg = Annotated[list[str] | None, typer.Argument(
    help="runs: ids, unique id prefixes, names or paths (or --sweep)", show_default=False)]


def _runs(refs: list[str] | None, runs_dir: str | None, sweep: str | None) -> list:
    from bvae_tui.engine.errors import RunError

    if not refs and sweep is None:
        raise RunError("name the runs to export (ids, prefixes or names), or --sweep SWEEP")
    return pick_runs(refs, None, runs_dir, sweep)


@export_app.command("csv")
def csv(
    output: Annotated[str, typer.Option("--output", "-o", help="CSV file to write",
                                        show_default=False)],
    runs: RunsArg = None,
    sweep: SweepOpt = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Every metrics row of the runs as CSV: one line per row, the config fields that differ
    between the runs (a sweep's swept values) as columns, one column per latent; with probes
    (--probe-every), MIG and each factor's best latent and its share (probe_* columns) on the
    line of each probe's iteration."""
    from bvae_tui.engine.analysis.export_data import export_csv

    typer.echo(plain(export_csv(_runs(runs, runs_dir, sweep), output)))


@export_app.command("tensorboard")
def tensorboard(
    output: Annotated[str, typer.Option("--output", "-o", help="folder for the event files "
                                        "(one sub-folder per run)", show_default=False)],
    runs: RunsArg = None,
    sweep: SweepOpt = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """TensorBoard event files: training scalars, KL per latent, the probes (probe/mig,
    probe/mi/FACTOR, probe/best_latent/FACTOR), the latest previews, the config as hparams and
    the eval scores. View with 'tensorboard --logdir DIR' (or 'wandb sync DIR').
    Needs tensorboard: pip install 'bvae-tui\\[tensorboard]'."""
    from bvae_tui.engine.analysis.export_data import export_tensorboard

    for path in export_tensorboard(_runs(runs, runs_dir, sweep), output):
        typer.echo(plain(path))
