"""Latent traversals and reconstructions: computing them, laying them out, writing PNGs and GIFs.

A traversal takes the encoder mean of a fixed image (or a code drawn from N(0, I)), sweeps one
latent over ``steps`` values in [-limit, limit] while the others stay put, and decodes every code
with a sigmoid. Rows are latents, ordered by their KL (most informative first) with the KL written
beside each row, or in their natural order.

Layout, with ``T`` = 64 px tiles and ``SEP`` = 1 px separators:

- traversal PNG: one panel per fixed image, side by side (``PANEL_GAP`` px apart); a panel has one
  row per latent and one column per value; a label column on the left names each row's latent and
  its KL in nats.
- traversal GIF: frame ``t`` shows every latent at value ``t`` at once (rows = latents, columns =
  fixed images) under a header naming the value; frames step through the values and loop forever.
- reconstruction PNG: inputs in the top row, their reconstructions below.

torch, PIL and imageio are imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bvae_tui.engine.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import torch

TILE = 64
SEP = 1  # thin separator between tiles
PANEL_GAP = 4  # wider gap between the panels of different fixed images
LABEL_W = 40  # label column: latent name and its KL
HEADER_H = 14  # GIF header: the current value
DECODE_BATCH = 256  # codes decoded per forward pass

SEP_COLOUR = (96, 96, 96)
LABEL_BG = (24, 24, 24)
LABEL_FG = (235, 235, 235)
KL_FG = (165, 165, 165)  # grey, like the rest: a grey grid is saved as a 1-channel PNG


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
    from bvae_tui.engine.errors import RunError

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
    if "shape" in names and sizes:
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
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# Computing traversals


def _device_of(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


def latent_order(kl_per_latent: Sequence[float] | None, z_dim: int,
                 order: str = "kl") -> list[int]:
    """Latent indices for the rows: by KL, largest first (stable), or natural order."""
    if order not in ("kl", "natural"):
        from bvae_tui.engine.errors import ConfigError

        raise ConfigError(f"--order must be kl or natural; got {order!r}")
    if order == "natural" or kl_per_latent is None or len(kl_per_latent) != z_dim:
        return list(range(z_dim))
    kl = np.asarray(kl_per_latent, dtype=np.float64)
    return [int(i) for i in np.argsort(-kl, kind="stable")]


def encode_means(model: Any, images: torch.Tensor) -> torch.Tensor:
    """Encoder means (M, Z) of float images in [0, 1], without autograd."""
    import torch

    with torch.no_grad():
        mu, _ = model.encode(images.to(_device_of(model)))
    return mu.float()


def random_codes(n: int, z_dim: int, seed: int = 0, device: Any = "cpu") -> torch.Tensor:
    """``n`` codes drawn from the prior N(0, I) with a seeded generator (same seed, same codes)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(n, z_dim, generator=gen).to(device)


def decode(model: Any, codes: torch.Tensor, batch: int = DECODE_BATCH) -> np.ndarray:
    """Decode codes (N, Z) to images float32 (N, C, 64, 64) in [0, 1], batched, without autograd."""
    import torch

    device = _device_of(model)
    out = []
    with torch.no_grad():
        for start in range(0, codes.shape[0], batch):
            logits = model.decode(codes[start:start + batch].to(device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out, axis=0)


def traversal_values(limit: float = 3.0, steps: int = 10) -> np.ndarray:
    """The ``steps`` values, evenly spaced over [-limit, limit] (both ends included)."""
    return np.linspace(-limit, limit, steps, dtype=np.float32)


def traverse(model: Any, codes: torch.Tensor, rows: Sequence[int], limit: float = 3.0,
             steps: int = 10) -> np.ndarray:
    """Sweep each latent in ``rows`` from each starting code; the others stay fixed.

    ``codes``: (M, Z) starting codes (encoder means or prior samples). Returns float32
    (M, len(rows), steps, C, 64, 64) in [0, 1]: image m, row r (latent ``rows[r]``), value s.
    """
    import torch

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
    import torch

    device = _device_of(model)
    total = None
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            mu, logvar = model.encode(images[start:start + batch].to(device))
            mu, logvar = mu.float(), logvar.float()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(0)
            total = kl if total is None else total + kl
    assert total is not None
    return [float(v) for v in (total / images.shape[0]).cpu()]


# --------------------------------------------------------------------------------------------
# Layout


def _rgb(tiles: np.ndarray) -> np.ndarray:
    """float (..., C, H, W) in [0, 1] -> uint8 (..., H, W, 3)."""
    arr = np.clip(np.rint(tiles * 255.0), 0, 255).astype(np.uint8)
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] > 3:
        arr = arr[..., :3]
    return arr


def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # old Pillow or no FreeType: the built-in bitmap font
        return ImageFont.load_default()


def _tile_grid(tiles: np.ndarray, sep: int = SEP) -> np.ndarray:
    """uint8 (R, S, H, W, 3) -> (R*(H+sep)+sep, S*(W+sep)+sep, 3) with separator lines."""
    r, s, h, w, _ = tiles.shape
    out = np.empty((r * (h + sep) + sep, s * (w + sep) + sep, 3), dtype=np.uint8)
    out[:] = SEP_COLOUR
    for i in range(r):
        for j in range(s):
            y, x = sep + i * (h + sep), sep + j * (w + sep)
            out[y:y + h, x:x + w] = tiles[i, j]
    return out


def _label_column(height: int, rows: Sequence[int], kl: Sequence[float] | None,
                  top: int = 0, tile: int = TILE, sep: int = SEP) -> np.ndarray:
    """A LABEL_W-wide column naming each row's latent ("z3") and, when known, its KL."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (LABEL_W, height), LABEL_BG)
    draw = ImageDraw.Draw(img)
    font = _font()
    for r, latent in enumerate(rows):
        y = top + sep + r * (tile + sep)
        mid = y + tile // 2
        draw.text((3, mid - 13), f"z{latent}", fill=LABEL_FG, font=font)
        if kl is not None and latent < len(kl):
            draw.text((3, mid + 1), _fmt_kl(kl[latent]), fill=KL_FG, font=font)
    return np.asarray(img)


def _fmt_kl(value: float) -> str:
    """KL in nats, short enough for the label column."""
    if not np.isfinite(value):
        return "nan"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 100 \
        else f"{value:.0f}"


def traversal_grid(traversals: np.ndarray, rows: Sequence[int],
                   kl: Sequence[float] | None = None, labels: bool = True) -> np.ndarray:
    """The PNG grid (H, W, 3) uint8 of :func:`traverse`'s output: one panel per starting code.

    Size: height ``R*(64+1)+1``, width ``LABEL_W + M*(S*(64+1)+1) + (M-1)*PANEL_GAP`` (no label
    column when ``labels`` is False), for M codes, R rows and S values.
    """
    m = traversals.shape[0]
    tiles = _rgb(traversals)  # (M, R, S, H, W, 3)
    panels = [_tile_grid(tiles[i]) for i in range(m)]
    height = panels[0].shape[0]
    parts: list[np.ndarray] = []
    if labels:
        parts.append(_label_column(height, rows, kl))
    for i, panel in enumerate(panels):
        if i:
            parts.append(np.full((height, PANEL_GAP, 3), LABEL_BG, dtype=np.uint8))
        parts.append(panel)
    return np.concatenate(parts, axis=1)


def grid_size(z_rows: int, steps: int, n_images: int, labels: bool = True) -> tuple[int, int]:
    """(height, width) in pixels of :func:`traversal_grid` for these counts."""
    height = z_rows * (TILE + SEP) + SEP
    width = n_images * (steps * (TILE + SEP) + SEP) + (n_images - 1) * PANEL_GAP
    return height, width + (LABEL_W if labels else 0)


def gif_frames(traversals: np.ndarray, rows: Sequence[int], values: Sequence[float],
               kl: Sequence[float] | None = None) -> np.ndarray:
    """GIF frames uint8 (S, H, W, 3): frame s shows every row at value s (columns = codes).

    Each frame carries a header with its value, which also keeps consecutive frames distinct
    (a GIF writer may merge identical frames, which would change the frame count and timing).
    """
    from PIL import Image, ImageDraw

    tiles = _rgb(traversals)  # (M, R, S, H, W, 3)
    per_value = np.moveaxis(tiles, 2, 0)  # (S, M, R, ...)
    font = _font()
    frames = []
    for s, value in enumerate(values):
        body = _tile_grid(np.swapaxes(per_value[s], 0, 1))  # (R, M) tiles
        column = _label_column(body.shape[0], rows, kl)
        frame = np.concatenate([column, body], axis=1)
        header = Image.new("RGB", (frame.shape[1], HEADER_H), LABEL_BG)
        draw = ImageDraw.Draw(header)
        draw.text((3, 1), f"z = {value:+.2f}", fill=LABEL_FG, font=font)
        # A progress tick, so the sweep's position shows even where the text is too small.
        start = min(72, frame.shape[1] - 12)  # right of the value text
        span = frame.shape[1] - start - 8
        x = start + int(round(s * span / max(1, len(values) - 1)))
        draw.rectangle([x, HEADER_H - 4, x + 5, HEADER_H - 2], fill=KL_FG)
        frames.append(np.concatenate([np.asarray(header), frame], axis=0))
    return np.stack(frames)


def recon_grid(inputs: np.ndarray, recons: np.ndarray) -> np.ndarray:
    """Inputs (top row) above reconstructions (bottom row): uint8 (2*65+1, M*65+1, 3)."""
    tiles = np.stack([_rgb(inputs), _rgb(recons)])  # (2, M, H, W, 3)
    return _tile_grid(tiles)


# --------------------------------------------------------------------------------------------
# Files


def write_png(path: Path, image: np.ndarray, compress_level: int = 6) -> Path:
    """Write an (H, W, 3) uint8 image as PNG, atomically (temp file, then rename); an all-grey
    image is stored with one channel (read it back with :func:`read_png_rgb`)."""
    from PIL import Image

    image = np.ascontiguousarray(image)
    # Grey content (1-channel data, grey labels) loses nothing as 'L' and halves the file.
    grey = bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
    pil = Image.fromarray(image[..., 0].copy() if grey else image)  # mode from the shape
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG", compress_level=compress_level)
    return Path(path)


def frame_duration_ms(fps: float) -> int:
    """Per-frame duration in milliseconds, as GIF stores it (whole centiseconds, at least 20 ms:
    browsers slow down shorter delays)."""
    return max(20, int(round(100.0 / fps)) * 10)


def write_gif(path: Path, frames: np.ndarray, fps: float = 5.0) -> Path:
    """Write frames (S, H, W, 3) as an endlessly looping GIF, atomically, through imageio's v3 API
    with the pillow plugin (duration in milliseconds there; no external programs)."""
    import imageio.v3 as iio

    frames = np.ascontiguousarray(frames)
    if (frames[..., 0] == frames[..., 1]).all() and (frames[..., 1] == frames[..., 2]).all():
        frames = np.ascontiguousarray(frames[..., 0])  # grey: exact 'L' frames, no dithering
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, plugin="pillow", extension=".gif",
                    is_batch=True, duration=frame_duration_ms(fps), loop=0)
    return Path(path)


def read_png_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (the TUI draws previews with it); OSError if missing
    or unreadable."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).copy()


def write_previews(model: Any, images: torch.Tensor, traversal_path: Path, recon_path: Path,
                   kl_per_latent: Sequence[float] | None = None, limit: float = 3.0,
                   steps: int = 10) -> None:
    """The worker's live previews: a traversal of the first fixed image (rows: latents by KL)
    and the reconstructions of all of them, at the paths the run store gives.

    Cheap: no autograd, one batched decode each, fast PNG compression; every file is written
    atomically so the TUI never reads half a PNG. The model's train/eval mode is restored.
    """
    for path in (traversal_path, recon_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
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
