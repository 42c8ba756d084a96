"""*The Scream* (Edvard Munch, 1893), the background of scream-dSprites: where the image is
looked for, how it is checked and loaded, and its download.

disentanglement_lib reads ``scream/scream.jpg`` under its data dir, fetched by
``bin/dlib_download_data`` from Wikimedia Commons (``registry.SCREAM_URL``), and shrinks it with
Pillow's ``thumbnail((350, 274, 3))``: the Pillow of its time read the first two numbers, so the
image is made to fit 350 x 274 pixels, keeping its aspect ratio. We do the same with
``thumbnail((350, 274))``.

No digest of that file is published that we could find (disentanglement_lib, disent and the
other loaders fetch it unchecked, and Wikimedia may upload a new version under the same address),
so a download is checked by size and format only: a JPEG of a plausible size that decodes
completely (a truncated file fails) and is large enough for a 64x64 patch after the thumbnail.
A user who has a copy they trust can pin its sha256 with ``BVAE_SCREAM_SHA256``: a download
that does not match it is refused, and nothing is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bvae_tui.datasets.errors import DataError

Progress = Callable[[str, int, "int | None"], None]

SCREAM_FILE = "scream.jpg"
# Its address, as bin/dlib_download_data fetches it: registry.SCREAM_URL.
PIN_ENV = "BVAE_SCREAM_SHA256"
FIT = (350, 274)  # (width, height) the image is shrunk to fit, as disentanglement_lib does
PATCH = 64
# Bounds of a plausible file: the painting is a JPEG of a few hundred KB to a few MB; these are
# loose on purpose (a new upload at another quality still passes), and exclude an error page or
# an empty file on one side and something that is not this image on the other.
MIN_BYTES = 4 << 10
MAX_BYTES = 64 << 20


def find_scream(root: Path) -> Path | None:
    """The image under the data root: ``scream.jpg``, or ``scream/scream.jpg`` (the layout of
    disentanglement_lib's data dir, so that one can serve as the data root)."""
    for path in (root / SCREAM_FILE, root / "scream" / SCREAM_FILE):
        if path.is_file():  # a regular file (or a link to one): never a FIFO or a folder
            return path
    return None


def missing_error(name: str, root: Path) -> DataError:
    return DataError(f"{name} needs The Scream as its background: put {SCREAM_FILE} (Munch's "
                     f"painting, a JPEG) in {root}, or run: bvae data download {name}")


def load_background(path: Path) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1]: the image shrunk to fit 350 x 274, or a one-line
    :class:`DataError` saying why the file cannot be used."""
    why = _size_problem(path)
    if why is None:
        try:
            return _decode(path)
        except _Unusable as exc:
            why = str(exc)
    raise DataError(f"{path} is not a usable image of The Scream ({why}); replace it, or "
                    f"delete it and run: bvae data download scream-dsprites")


class _Unusable(Exception):
    """The file is not an image we can use (the message says why)."""


def _size_problem(path: Path) -> str | None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    if size < MIN_BYTES:
        return f"{size} bytes, too small for the painting"
    if size > MAX_BYTES:
        return f"{size} bytes, larger than {MAX_BYTES >> 20} MB"
    return None


def _decode(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as fh, Image.open(fh) as img:
            if img.format != "JPEG":
                raise _Unusable(f"a {img.format or 'unknown'} file, not a JPEG")
            img.thumbnail(FIT)
            img.load()  # decodes everything (thumbnail does not when the image already fits):
            rgb = img.convert("RGB")  # a truncated file fails here, not later in a batch
    except _Unusable:
        raise
    except UnidentifiedImageError:  # its message quotes Python's repr of the open file
        raise _Unusable("not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise _Unusable(str(exc).splitlines()[0] if str(exc) else "not an image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise _Unusable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    width, height = rgb.size
    if width <= PATCH or height <= PATCH:
        raise _Unusable(f"{width}x{height} after shrinking to fit {FIT[0]}x{FIT[1]}, too small "
                        f"for a {PATCH}x{PATCH} patch")
    return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)


def _pinned_digest() -> str | None:
    pin = os.environ.get(PIN_ENV, "").strip().lower()
    if not pin:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", pin):
        raise DataError(f"{PIN_ENV} must be a sha256 (64 hex digits); got {pin[:80]!r}")
    return pin


def download_scream(root: Path, url: str, fetch: Callable[..., Path],
                    progress: Progress | None = None, **kwargs) -> Path:
    """Fetch the image into ``root / scream.jpg`` with ``fetch`` (``download.download_file``,
    passed in by ``download.download_dataset``: resumable, verified against the pin); a no-op
    when the image is there.

    It arrives under a hidden name and becomes ``scream.jpg`` only once it is checked (the pin
    when set, then size and format), so a refused or interrupted download never leaves a file
    the data set would load.
    """
    found = find_scream(root)
    if found is not None:
        return found
    pin = _pinned_digest()
    staged = root / f".{SCREAM_FILE}.download"
    got = fetch(url, staged, check=("sha256", pin) if pin else None, progress=progress,
                        hint=f"put {SCREAM_FILE} in {root}", **kwargs)
    why = _size_problem(got)
    if why is None:
        try:
            _decode(got)
        except _Unusable as exc:
            why = str(exc)
    if why is not None:
        with contextlib.suppress(OSError):
            got.unlink()
        raise DataError(f"the download of {url} is not a usable image of The Scream ({why}); "
                        f"it was not kept: try again, or put {SCREAM_FILE} in {root} by hand")
    dest = root / SCREAM_FILE
    os.replace(got, dest)
    return dest
