"""Rendering traversals and reconstructions: grid layout, GIF frames, PNG/GIF files.

Layout, with ``T`` px tiles (the run's image size: 64, or 32 / 128 with --image-size) and
``SEP`` = 1 px separators:

- traversal PNG: one panel per fixed image, side by side (``PANEL_GAP`` px apart); a panel has one
  row per latent and one column per value; a label column on the left names each row's latent and
  its KL in nats.
- traversal GIF: frame ``t`` shows every latent at value ``t`` at once (rows = latents, columns =
  fixed images) under a header naming the value; frames step through the values and loop forever.
- reconstruction PNG: inputs in the top row, their reconstructions below.

numpy and Pillow only (no torch), so the TUI can read previews through this module cheaply.
The grid is our own ten lines rather than ``torchvision.utils.make_grid``: that gives the same
pixels for two or more tiles but returns a lone tile without its border (the GIF frame of a
one-latent model traversed from one image would shrink), takes one grey level for the
separators, and would bring torch and torchvision (seconds to import) into this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bvae_tui.engine.atomic import atomic_path

TILE = 64
SEP = 1  # thin separator between tiles
PANEL_GAP = 4  # wider gap between the panels of different fixed images
LABEL_W = 40  # label column: latent name and its KL
HEADER_H = 14  # GIF header: the current value

SEP_COLOUR = (96, 96, 96)
LABEL_BG = (24, 24, 24)
LABEL_FG = (235, 235, 235)
KL_FG = (165, 165, 165)  # grey, like the rest: a grey grid is saved as a 1-channel PNG


def traversal_values(limit: float = 3.0, steps: int = 10) -> np.ndarray:
    """The ``steps`` values, evenly spaced over [-limit, limit] (both ends included)."""
    return np.linspace(-limit, limit, steps, dtype=np.float32)


def _rgb(tiles: np.ndarray) -> np.ndarray:
    """float (..., C, H, W) in [0, 1] -> uint8 (..., H, W, 3)."""
    arr = np.clip(np.rint(tiles * 255.0), 0, 255).astype(np.uint8)
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] > 3:
        arr = arr[..., :3]
    return arr


def font(size: int = 11):
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
    img = Image.new("RGB", (LABEL_W, height), LABEL_BG)
    draw = ImageDraw.Draw(img)
    face = font()
    for r, latent in enumerate(rows):
        y = top + sep + r * (tile + sep)
        mid = y + tile // 2
        draw.text((3, mid - 13), f"z{latent}", fill=LABEL_FG, font=face)
        if kl is not None and latent < len(kl):
            draw.text((3, mid + 1), _fmt_kl(kl[latent]), fill=KL_FG, font=face)
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
        parts.append(_label_column(height, rows, kl, tile=tiles.shape[-3]))
    for i, panel in enumerate(panels):
        if i:
            parts.append(np.full((height, PANEL_GAP, 3), LABEL_BG, dtype=np.uint8))
        parts.append(panel)
    return np.concatenate(parts, axis=1)


def grid_size(z_rows: int, steps: int, n_images: int, labels: bool = True,
              tile: int = TILE) -> tuple[int, int]:
    """(height, width) in pixels of :func:`traversal_grid` for these counts and ``tile`` px
    images."""
    height = z_rows * (tile + SEP) + SEP
    width = n_images * (steps * (tile + SEP) + SEP) + (n_images - 1) * PANEL_GAP
    return height, width + (LABEL_W if labels else 0)


def gif_frames(traversals: np.ndarray, rows: Sequence[int], values: Sequence[float],
               kl: Sequence[float] | None = None) -> np.ndarray:
    """GIF frames uint8 (S, H, W, 3): frame s shows every row at value s (columns = codes).

    Each frame carries a header with its value, which also keeps consecutive frames distinct
    (a GIF writer may merge identical frames, which would change the frame count and timing).
    """
    tiles = _rgb(traversals)  # (M, R, S, H, W, 3)
    per_value = np.moveaxis(tiles, 2, 0)  # (S, M, R, ...)
    face = font()
    frames = []
    for s, value in enumerate(values):
        body = _tile_grid(np.swapaxes(per_value[s], 0, 1))  # (R, M) tiles
        column = _label_column(body.shape[0], rows, kl, top=0, tile=tiles.shape[-3])
        frame = np.concatenate([column, body], axis=1)
        header = Image.new("RGB", (frame.shape[1], HEADER_H), LABEL_BG)
        draw = ImageDraw.Draw(header)
        draw.text((3, 1), f"z = {value:+.2f}", fill=LABEL_FG, font=face)
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


def write_png(path: Path, image: np.ndarray, compress_level: int = 6) -> Path:
    """Write an (H, W, 3) uint8 image as PNG, atomically (temp file, then rename); an all-grey
    image is stored with one channel (read it back with :func:`read_png_rgb`)."""
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
    # Here, not at the top: the TUI reads previews through this module and never writes a GIF;
    # imageio takes longer to import than Pillow.
    import imageio.v3 as iio

    frames = np.ascontiguousarray(frames)
    if (frames[..., 0] == frames[..., 1]).all() and (frames[..., 1] == frames[..., 2]).all():
        frames = np.ascontiguousarray(frames[..., 0])  # grey: exact 'L' frames, no dithering
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, plugin="pillow", extension=".gif",
                    is_batch=True, duration=frame_duration_ms(fps), loop=0)
    return Path(path)


MAX_PREVIEW_PIXELS = 4096 * 4096  # a traversal grid is a few hundred pixels a side


def read_png_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (the TUI draws previews with it); OSError if missing,
    unreadable, not a regular file (a FIFO would block the reader) or far larger than any
    preview (a decompression bomb would take the memory)."""
    from bvae_tui.engine.runs.files import open_regular

    fh = open_regular(Path(path))
    if fh is None:
        raise OSError(f"{path} is missing or not a regular file")
    with fh, Image.open(fh) as img:
        if img.width * img.height > MAX_PREVIEW_PIXELS:
            raise OSError(f"{path} is {img.width}x{img.height} pixels, too large for a preview")
        return np.asarray(img.convert("RGB")).copy()
