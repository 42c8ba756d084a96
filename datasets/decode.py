"""One photo (JPEG or PNG, bytes or a path) decoded into a 64x64 RGB uint8 tile, with Pillow.

Pillow rather than torchvision (measured by benchmarks/bench_decode.py; benchmarks/RESULTS.md):
``torchvision.io.decode_image`` gives the same pixels and decodes alone in ~0.6x Pillow's time,
but with our Lanczos resize kept the whole path gains only 0-20%; and it is deprecated since
torchvision 0.29 (a DeprecationWarning on every call), its RGB_ALPHA mode garbles palette PNGs
without transparency (a hand-written PNG chunk check would have to guard it), and libjpeg's
complaints about damaged JPEGs go straight to stderr, over the CLI's progress line and the TUI.
``transforms.v2.functional.resize`` has no Lanczos for tensors; its antialiased bicubic is within
one level of Pillow's own BICUBIC and up to 7 levels (CelebA-sized JPEGs; mean 0.8) and 12
(600x600 renders; mean 0.2) away from the Lanczos tiles, so prepared caches would change. An
all-torchvision bicubic path takes ~0.55x the time; Pillow with BICUBIC alone ~0.75x.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bvae_tui.datasets.registry import IMAGE_SIZE


def decode(data: bytes | str | Path, crop: bool = True,
           size: int = IMAGE_SIZE) -> np.ndarray | None:
    """One image (bytes or path) -> (3, size, size) uint8, or None when it cannot be read."""
    try:
        return to_tile(open_rgb(data), crop, size)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def open_rgb(data: bytes | str | Path) -> Image.Image:
    """The image as a Pillow RGB image, decoded; raises what Pillow raises on a bad file.

    Transparency (RGBA, LA, palette with a transparent colour) is composited on white, as renders
    are shown; 16-bit greyscale is scaled to 8 bits (Pillow's own conversion clips it to white).
    """
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as img:
        img.load()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(bg, rgba).convert("RGB")
        if img.mode in ("I", "I;16", "I;16B", "I;16L"):
            wide = np.asarray(img).astype(np.int64)
            grey = np.clip((wide + 128) // 257, 0, 255).astype(np.uint8)
            return Image.fromarray(grey).convert("RGB")
        return img.convert("RGB")


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred square (floor of the odd pixel)."""
    s = min(width, height)
    left, top = (width - s) // 2, (height - s) // 2
    return left, top, left + s, top + s


def to_tile(img: Image.Image, crop: bool = True, size: int = IMAGE_SIZE) -> np.ndarray | None:
    """A Pillow RGB image -> (3, size, size) uint8: centre-cropped to a square when ``crop``,
    then resized with Lanczos (antialiased); None for an empty image."""
    w, h = img.size
    if w == 0 or h == 0:
        return None
    if crop and w != h:
        img = img.crop(centre_square(w, h))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
