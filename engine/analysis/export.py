"""Exports of a run: traversal GIF, traversal PNG grid, reconstruction PNG.

Each export loads a checkpoint (the last one unless told otherwise) onto the CPU by default, so a
run trained on a GPU exports on a laptop; picks the fixed images from the run's dataset; and
writes its file atomically under ``<run>/exports/`` unless given another path. Everything a user
can get wrong (no checkpoint, a corrupt one, an unwritable path, out-of-range options) is a
one-line :class:`~bvae_tui.errors.UserError`.

:mod:`.visualise` (and with it torch) is imported inside the export functions: the TUI's export
form imports :func:`check_options` from here, on the UI thread, as the user submits it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.engine.analysis import render
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.devices import resolve_device
from bvae_tui.engine.runs.guard import is_link, real_subdir
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.train.checkpoint import load_model
from bvae_tui.errors import UserError, brief

KL_SAMPLE = 512  # images the KL ordering is measured on (seeded, so the order is repeatable)


# --------------------------------------------------------------------------------------------
# Checks


def check_options(limit: float = 3.0, steps: int = 10, fps: float = 5.0,
                  order: str = "kl") -> None:
    """Raise a one-line :class:`ConfigError` for an option out of its range."""
    if not (isinstance(limit, (int, float)) and math.isfinite(limit) and 0 < limit <= 20):
        raise ConfigError(f"--limit must be a number in (0, 20]; got {limit!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 64:
        raise ConfigError(f"--steps must be a whole number from 2 to 64; got {steps!r}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 50):
        raise ConfigError(f"--fps must be a number in (0, 50]; got {fps!r}")
    if order not in ("kl", "natural"):
        raise ConfigError(f"--order must be kl or natural; got {order!r}")


def load_run_model(run: Run, checkpoint: str | os.PathLike | None = None,
                   device: str = "cpu") -> tuple[Any, Any, int]:
    """(model in eval mode, TrainConfig, iteration) from a checkpoint, as one-line errors."""
    if checkpoint is None and not (run.last_checkpoint.exists()
                                   or run.previous_checkpoint.exists()):
        state = run.status().state
        raise RunError(f"run {run.id} ({state}) has no checkpoint yet; wait for its first "
                       f"checkpoint or 'bvae resume {run.id}'")
    if device != "cpu":
        device = resolve_device(device)
    try:
        model, cfg, iteration = load_model(run, checkpoint, device=device)
    except UserError:
        raise
    except Exception as exc:  # anything torch raises on a damaged file: still one line
        where = checkpoint or run.last_checkpoint
        raise RunError(f"checkpoint {where} cannot be loaded ({brief(exc)}); "
                       "pick another with --checkpoint or retrain") from None
    model.eval()
    return model, cfg, int(iteration)


def open_run_dataset(run: Run, cfg: Any, data_dir: str | os.PathLike | None = None) -> Any:
    """The run's dataset: its recorded data dir where that exists (the run may come from another
    machine), else ``data_dir`` / $BVAE_DATA_DIR / ./data."""
    recorded = run.data_dir
    chosen = recorded if recorded and Path(recorded).is_dir() else data_dir
    return open_dataset(cfg.dataset, chosen, image_size=cfg.image_size)


def output_path(run: Run, output: str | os.PathLike | None, default_name: str) -> Path:
    """Where an export goes: ``output`` (a file, or a directory to put the default name in), or
    the run's exports/ folder. The folder is created; an unusable path is a one-line error."""
    suffix = Path(default_name).suffix
    if output is None:  # the run's own folder: never through a link planted in its place
        if is_link(run.exports_dir):
            real_subdir(run.exports_dir)  # says it is a link, in one line
        path = run.exports_dir / default_name
    else:
        path = Path(output).expanduser()
        if path.is_dir() or str(output).endswith(("/", os.sep)):
            path = path / default_name
        if path.suffix.lower() != suffix:
            raise RunError(f"output {path} must end in {suffix}; "
                           f"e.g. -o {path.with_suffix(suffix)}")
    return writable_folder(path, path.parent)


def writable_folder(path: Path, folder: Path, option: str = "-o") -> Path:
    """Create ``folder`` (where ``path`` will be written) if needed and check that it can be
    written; a one-line :class:`RunError` naming ``option`` otherwise. Returns ``path``."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()),
                   None)
    if blocker is not None:
        raise RunError(f"cannot write {path}: {blocker} is a file, not a folder; "
                       f"choose another output with {option}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create folder {folder} ({exc.strerror or exc}); "
                       f"choose another output with {option}") from None
    try:  # a try, not the permission bits: those say nothing of read-only mounts or ACLs
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RunError(f"cannot write to {folder} ({exc.strerror or exc}); "
                       f"choose another output with {option}") from None
    return path


def _write(writer: Any, path: Path, *args: Any, **kwargs: Any) -> Path:
    try:
        return writer(path, *args, **kwargs)
    except OSError as exc:
        raise RunError(f"cannot write {path} ({exc.strerror or exc}); "
                       "choose another output with -o") from None


# --------------------------------------------------------------------------------------------
# Preparing a traversal


def _kl_for_order(model: Any, run: Run, dataset: Any | None, seed: int) -> list[float] | None:
    """Per-latent KL of this checkpoint on a seeded sample of the data; without data, the last
    logged KL of the run; else None (natural order)."""
    from bvae_tui.engine.analysis import visualise as vis

    if dataset is not None and dataset.n > 0:
        rng = np.random.RandomState(seed)
        idx = np.sort(rng.choice(dataset.n, size=min(KL_SAMPLE, dataset.n), replace=False))
        import torch

        x = torch.from_numpy(np.ascontiguousarray(dataset.float_images_at(idx), np.float32))
        return vis.kl_of_images(model, x)
    row = run.last_metrics()
    return row.kl_per_latent if row else None


def _traversal(run: Run, images: Sequence[int] | None, limit: float, steps: int,
               checkpoint: str | os.PathLike | None, order: str, random: bool, seed: int,
               device: str, data_dir: str | os.PathLike | None
               ) -> tuple[np.ndarray, list[int], list[float] | None, int]:
    """(traversals (M, R, S, C, 64, 64), rows, per-latent KL, iteration) for an export."""
    from bvae_tui.engine.analysis import visualise as vis

    model, cfg, iteration = load_run_model(run, checkpoint, device)
    dataset = None
    if not random or order == "kl":
        try:
            dataset = open_run_dataset(run, cfg, data_dir)
        except UserError:
            if not random:  # the fixed images need the data: say why it is missing
                raise
    if random:
        count = len(images) if images else 3
        codes = vis.random_codes(count, model.z_dim, seed=seed)
    else:
        pics = vis.fixed_images(dataset, images, seed=seed)
        codes = vis.encode_means(model, vis.to_tensor(pics, vis.model_device(model)))
    kl = _kl_for_order(model, run, dataset, seed) if order == "kl" else None
    rows = vis.latent_order(kl, model.z_dim, order)
    return vis.traverse(model, codes, rows, limit=limit, steps=steps), rows, kl, iteration


def _name(kind: str, iteration: int, random: bool, ext: str) -> str:
    return f"{kind}-it{iteration}{'-random' if random else ''}.{ext}"


# --------------------------------------------------------------------------------------------
# Public API


def export_gif(run: Run, output: str | os.PathLike | None = None,
               images: Sequence[int] | None = None, limit: float = 3.0, steps: int = 10,
               fps: float = 5.0, checkpoint: str | os.PathLike | None = None,
               order: str = "kl", random: bool = False, seed: int = 0, device: str = "cpu",
               data_dir: str | os.PathLike | None = None) -> Path:
    """An animated traversal GIF: frame s shows every latent at value s; loops forever."""
    check_options(limit, steps, fps, order)
    if output is not None:  # fail on a bad path before the (slower) model work
        output_path(run, output, "traversal.gif")
    trav, rows, kl, iteration = _traversal(run, images, limit, steps, checkpoint, order, random,
                                           seed, device, data_dir)
    path = output_path(run, output, _name("traversal", iteration, random, "gif"))
    frames = render.gif_frames(trav, rows, render.traversal_values(limit, steps).tolist(), kl)
    return _write(render.write_gif, path, frames, fps=fps)


def export_png(run: Run, output: str | os.PathLike | None = None,
               images: Sequence[int] | None = None, limit: float = 3.0, steps: int = 10,
               checkpoint: str | os.PathLike | None = None, order: str = "kl",
               random: bool = False, seed: int = 0, device: str = "cpu",
               data_dir: str | os.PathLike | None = None) -> Path:
    """A traversal PNG grid: rows = latents (KL beside each), columns = values, one panel per
    fixed image."""
    check_options(limit, steps, 5.0, order)
    if output is not None:
        output_path(run, output, "traversal.png")
    trav, rows, kl, iteration = _traversal(run, images, limit, steps, checkpoint, order, random,
                                           seed, device, data_dir)
    path = output_path(run, output, _name("traversal", iteration, random, "png"))
    return _write(render.write_png, path, render.traversal_grid(trav, rows, kl))


def export_recon(run: Run, output: str | os.PathLike | None = None,
                 images: Sequence[int] | None = None,
                 checkpoint: str | os.PathLike | None = None, n: int = 8, seed: int = 0,
                 device: str = "cpu", data_dir: str | os.PathLike | None = None) -> Path:
    """A reconstruction PNG: the fixed images (top row) above their reconstructions."""
    from bvae_tui.engine.analysis import visualise as vis

    if output is not None:
        output_path(run, output, "recon.png")
    model, cfg, iteration = load_run_model(run, checkpoint, device)
    dataset = open_run_dataset(run, cfg, data_dir)
    pics = vis.fixed_images(dataset, images, n=n, seed=seed)
    x = vis.to_tensor(pics, vis.model_device(model))
    grid = render.recon_grid(x.cpu().numpy(), vis.reconstruct(model, x))
    path = output_path(run, output, _name("recon", iteration, False, "png"))
    return _write(render.write_png, path, grid)


def export_mi(run: Run, output: str | os.PathLike | None = None) -> Path:
    """The run's latent x factor information matrix (from eval.json) as a heat-map PNG."""
    from bvae_tui.engine.analysis.heatmap import mi_heatmap
    from bvae_tui.engine.analysis.mi_matrix import MIMatrix

    if output is not None:
        output_path(run, output, "mi.png")
    result = run.eval_results()
    matrix = MIMatrix.from_result(result) if result is not None else None
    if matrix is None:
        why = "has no eval.json" if result is None else "has no information matrix in eval.json"
        raise RunError(f"run {run.id} {why}; score it first with 'bvae eval {run.id}' "
                       "(MIG or modularity computes the matrix)")
    iteration = result.iteration if result.iteration is not None else 0
    title = f"{run.id} @ {iteration}: MI(latent; factor) / H(factor)"
    path = output_path(run, output, f"mi-it{iteration}.png")
    return _write(render.write_png, path, mi_heatmap(matrix, title))
