"""Latent traversals and reconstructions: choosing the fixed images, encoding them, sweeping the
latents and decoding; the worker's live previews. Laying the results out and writing files is
:mod:`bvae_tui.engine.analysis.render`.

A traversal takes the encoder mean of a fixed image (or a code drawn from N(0, I)), sweeps one
latent over ``steps`` values in [-limit, limit] while the others stay put, and decodes every code
with a sigmoid. Rows are latents, ordered by their KL (most informative first) with the KL written
beside each row, or in their natural order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bvae_tui.engine.analysis.render import (
    recon_grid,
    traversal_grid,
    traversal_values,
    write_png,
)
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.guard import real_subdir

DECODE_BATCH = 256  # codes decoded per forward pass

# --------------------------------------------------------------------------------------------
# Choosing the fixed images


def fixed_indices(dataset: Any, indices: Sequence[int] | None = None, n: int = 3,
                  seed: int = 0) -> np.ndarray:
    """Dataset indices of the images a traversal starts from.

    ``indices`` given: those (checked against the dataset size). dSprites-like data (a ``shape``
    factor): one image per shape (square, ellipse, heart), found through the factor table, at the
    largest scale, angle 0 and the centre of the canvas; beyond the number of shapes, seeded random
    images. Other data: ``n`` distinct images chosen with a seeded RandomState, so the same run
    always shows the same images.
    """
    total = int(dataset.n)
    if total <= 0:
        raise RunError(f"dataset {dataset.name} holds no images; prepare it with "
                       f"'bvae data prepare {dataset.name}'")
    if indices is not None:
        idx = np.asarray(list(indices), dtype=np.int64)
        if idx.size == 0:
            raise RunError("--images needs at least one index, e.g. --images 0,10,20")
        bad = idx[(idx < 0) | (idx >= total)]
        if bad.size:
            raise RunError(f"image index {int(bad[0])} is out of range; {dataset.name} has "
                           f"{total} images (0..{total - 1})")
        return idx
    if n < 1:
        raise RunError(f"need at least one image, got n={n}")
    chosen: list[int] = []
    names = tuple(getattr(dataset, "factor_names", ()) or ())
    sizes = tuple(getattr(dataset, "factor_sizes", ()) or ())
    if "shape" in names and sizes and getattr(dataset, "complete_grid", True):
        base = []
        for name, size in zip(names, sizes, strict=True):
            if name == "scale":
                base.append(size - 1)  # largest: the shape is easiest to see
            elif name in ("orientation", "color", "shape"):
                base.append(0)
            else:
                base.append(size // 2)  # positions: centre of the canvas
        k = names.index("shape")
        classes = np.tile(np.asarray(base, dtype=np.int64), (min(n, sizes[k]), 1))
        classes[:, k] = np.arange(len(classes))
        chosen = [int(i) for i in dataset.index_of(classes)]
    rng = np.random.RandomState(seed)
    taken = set(chosen)
    while len(chosen) < min(n, total):  # distinct seeded draws (no permutation of 737k items)
        i = int(rng.randint(total))
        if i not in taken:
            chosen.append(i)
            taken.add(i)
    return np.asarray(chosen, dtype=np.int64)


def fixed_images(dataset: Any, indices: Sequence[int] | None = None, n: int = 3,
                 seed: int = 0) -> np.ndarray:
    """The fixed images of :func:`fixed_indices` as uint8 (M, C, 64, 64) in 0..255.

    Binary data (stored as 0/1) is scaled to 0/255 so every dataset comes back on the same scale:
    divide by 255 for the model's [0, 1] input (:func:`to_tensor` does).
    """
    idx = fixed_indices(dataset, indices, n=n, seed=seed)
    images = np.asarray(dataset.images_at(idx))
    if getattr(dataset, "binary", False):
        images = images * np.uint8(255)
    return images.astype(np.uint8, copy=False)


def to_tensor(images: np.ndarray, device: Any = "cpu") -> torch.Tensor:
    """uint8 (M, C, 64, 64) in 0..255 -> float32 tensor in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# Computing traversals


def model_device(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


def latent_order(kl_per_latent: Sequence[float] | None, z_dim: int,
                 order: str = "kl") -> list[int]:
    """Latent indices for the rows: by KL, largest first (stable), or natural order."""
    if order not in ("kl", "natural"):
        raise ConfigError(f"--order must be kl or natural; got {order!r}")
    if order == "natural" or kl_per_latent is None or len(kl_per_latent) != z_dim:
        return list(range(z_dim))
    kl = np.asarray(kl_per_latent, dtype=np.float64)
    return [int(i) for i in np.argsort(-kl, kind="stable")]


def encode_means(model: Any, images: torch.Tensor) -> torch.Tensor:
    """Encoder means (M, Z) of float images in [0, 1], without autograd."""
    with torch.no_grad():
        mu, _ = model.encode(images.to(model_device(model)))
    return mu.float()


def random_codes(n: int, z_dim: int, seed: int = 0, device: Any = "cpu") -> torch.Tensor:
    """``n`` codes drawn from the prior N(0, I) with a seeded generator (same seed, same codes)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(n, z_dim, generator=gen).to(device)


def decode(model: Any, codes: torch.Tensor, batch: int = DECODE_BATCH) -> np.ndarray:
    """Decode codes (N, Z) to images float32 (N, C, 64, 64) in [0, 1], batched, without autograd."""
    device = model_device(model)
    out = []
    with torch.no_grad():
        for start in range(0, codes.shape[0], batch):
            logits = model.decode(codes[start:start + batch].to(device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out, axis=0)


def traverse(model: Any, codes: torch.Tensor, rows: Sequence[int], limit: float = 3.0,
             steps: int = 10) -> np.ndarray:
    """Sweep each latent in ``rows`` from each starting code; the others stay fixed.

    ``codes``: (M, Z) starting codes (encoder means or prior samples). Returns float32
    (M, len(rows), steps, C, 64, 64) in [0, 1]: image m, row r (latent ``rows[r]``), value s.
    """
    codes = codes.detach().float().cpu()
    m, z = codes.shape
    values = torch.from_numpy(traversal_values(limit, steps))
    rows = list(rows)
    grid = codes[:, None, None, :].repeat(1, len(rows), steps, 1)  # (M, R, S, Z)
    for r, latent in enumerate(rows):
        grid[:, r, :, latent] = values
    images = decode(model, grid.reshape(-1, z))
    return images.reshape(m, len(rows), steps, *images.shape[1:])


def reconstruct(model: Any, images: torch.Tensor) -> np.ndarray:
    """Reconstructions (decoded encoder means) float32 (M, C, 64, 64) in [0, 1]."""
    return decode(model, encode_means(model, images))


def kl_of_images(model: Any, images: torch.Tensor, batch: int = DECODE_BATCH) -> list[float]:
    """Per-latent KL(q(z|x) || N(0, I)) averaged over ``images`` (nats), without autograd."""
    device = model_device(model)
    total = None
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            mu, logvar = model.encode(images[start:start + batch].to(device))
            mu, logvar = mu.float(), logvar.float()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(0)
            total = kl if total is None else total + kl
    assert total is not None
    return [float(v) for v in (total / images.shape[0]).cpu()]


def write_previews(model: Any, images: torch.Tensor, traversal_path: Path, recon_path: Path,
                   kl_per_latent: Sequence[float] | None = None, limit: float = 3.0,
                   steps: int = 10) -> None:
    """The worker's live previews: a traversal of the first fixed image (rows: latents by KL)
    and the reconstructions of all of them, at the paths the run store gives.

    Cheap: no autograd, one batched decode each, fast PNG compression; every file is written
    atomically so the TUI never reads half a PNG. The model's train/eval mode is restored.
    """
    for path in (traversal_path, recon_path):
        real_subdir(Path(path).parent)  # never write a preview through a planted link
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        mu = encode_means(model, images)
        z_dim = int(mu.shape[1])
        kl = list(kl_per_latent) if kl_per_latent is not None else None
        rows = latent_order(kl, z_dim, "kl")
        trav = traverse(model, mu[:1], rows, limit=limit, steps=steps)
        write_png(traversal_path, traversal_grid(trav, rows, kl), compress_level=1)
        recons = decode(model, mu)
        inputs = images.detach().float().cpu().numpy()
        write_png(recon_path, recon_grid(inputs, recons), compress_level=1)
    finally:
        if was_training:
            model.train()
