"""The 32x32 crop form of binary single-sprite data (dSprites): 4x smaller than bit-packed images.

Every dSprites sprite fits in a 32x32 box, so the training tensor can hold, for each image, only
the bit-packed 32x32 crop around its sprite (128 bytes) and the crop's top-left corner (2 bytes)
instead of the whole bit-packed 64x64 image (512 bytes). This is not assumed: at prepare time each
image's crop is placed around the bounding box of its on-pixels, and the crop is accepted only if
it holds *every* on-pixel of the image (its bit count equals the image's). If a single image
fails, no crop files are kept and meta.json records why; the data then trains from the full
bit-packed images as before.

Cache files (beside ``images.npy``, see :mod:`datasets.cache`)::

    crops.npy        uint8 (N, 128): the 32x32 crop, np.packbits of its rows (row-major)
    crop_origin.npy  uint8 (N, 2): the crop's top-left pixel (row, column), each in 0..32
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache

IMAGE_SIZE = 64
CROP = 32
CROP_BYTES = CROP * CROP // 8  # 128
_MAX_ORIGIN = IMAGE_SIZE - CROP  # 32


def crop_packed(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops of bit-packed binary images ``packed`` (M, 512), vectorised in the packed domain.

    Each image row is one big-endian 64-bit word (pixel ``j`` is bit ``63 - j``), so the bounding
    box, the crop and the bit counts are a few integer operations on (M, 64) words.

    Returns ``(crops, origins, ok)``: crops uint8 (M, 128) bit-packed row-major, origins uint8
    (M, 2) (row, column) and ok bool (M,): whether the crop holds every on-pixel of its image.
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    m = len(packed)
    rows = packed.reshape(m, IMAGE_SIZE, 8).view(">u8").reshape(m, IMAGE_SIZE).astype(np.uint64)
    cols = np.bitwise_or.reduce(rows, axis=1) if m else np.zeros(0, dtype=np.uint64)
    pixel = np.arange(IMAGE_SIZE, dtype=np.uint64)
    occupied = (rows != 0, ((cols[:, None] >> (np.uint64(63) - pixel)) & np.uint64(1)) != 0)
    origins = np.zeros((m, 2), dtype=np.int64)
    for axis, occ in enumerate(occupied):  # occ: (M, 64), which rows / columns hold a pixel
        first = occ.argmax(axis=1)
        last = IMAGE_SIZE - 1 - occ[:, ::-1].argmax(axis=1)
        extent = last - first + 1
        # centre the bounding box in the crop (an empty image gets origin 0)
        start = first - np.maximum(CROP - extent, 0) // 2
        start[~occ.any(axis=1)] = 0
        origins[:, axis] = np.clip(start, 0, _MAX_ORIGIN)
    take = origins[:, :1] + np.arange(CROP)  # (M, 32) row indices
    shift = (CROP - origins[:, 1:]).astype(np.uint64)  # columns c0..c0+31 -> bits 31..0
    words = (np.take_along_axis(rows, take, axis=1) >> shift) & np.uint64(0xFFFFFFFF)
    crops = words.astype(">u4").view(np.uint8).reshape(m, CROP_BYTES)
    kept = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    total = np.bitwise_count(rows).sum(axis=1, dtype=np.int64)
    return crops, origins.astype(np.uint8), kept == total


def crop_images(imgs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`crop_packed` of binary (M, 64, 64) images (0/1 or bool)."""
    imgs = np.asarray(imgs)
    return crop_packed(np.packbits(imgs.reshape(len(imgs), -1) != 0, axis=1))


def uncrop(crops: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(M, 128) crops + (M, 2) origins -> uint8 (M, 64, 64) 0/1 images (the reference inverse)."""
    m = len(crops)
    bits = np.unpackbits(np.asarray(crops), axis=1).reshape(m, CROP, CROP)
    out = np.zeros((m, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(out, (CROP, CROP), axis=(1, 2),
                                                       writeable=True)
    o = np.asarray(origins, dtype=np.int64)
    windows[np.arange(m), o[:, 0], o[:, 1]] = bits
    return out


class CropWriter:
    """Builds ``crops.npy`` and ``crop_origin.npy`` in a cache being built, chunk by chunk.

    ``append_packed`` takes the images in storage order. The first image whose sprite
    does not fit in a 32x32 crop stops it: both files are removed and :meth:`close` says why.
    """

    def __init__(self, cache_dir: Path):
        self.dir = Path(cache_dir)
        self.rows = 0
        self.failure: str | None = None
        self._crops: cache.NpyWriter | None = cache.NpyWriter(
            self.dir / cache.CROPS, (CROP_BYTES,))
        self._origins: cache.NpyWriter | None = cache.NpyWriter(
            self.dir / cache.CROP_ORIGIN, (2,))

    def append_packed(self, packed: np.ndarray) -> None:
        """The next bit-packed (M, 512) images."""
        if self.failure is None:
            crops, origins, ok = crop_packed(packed)
            if ok.all():
                assert self._crops is not None and self._origins is not None
                self._crops.append(crops)
                self._origins.append(origins)
            else:
                bad = self.rows + int(np.flatnonzero(~ok)[0])
                self._fail(f"image {bad} has on-pixels outside any {CROP}x{CROP} box")
        self.rows += len(packed)

    def _fail(self, why: str) -> None:
        self.failure = why
        self.abort()

    def abort(self) -> None:
        """Close and remove both files (on errors, and when a sprite does not fit)."""
        for writer in (self._crops, self._origins):
            if writer is not None:
                writer.abort()
                with contextlib.suppress(OSError):
                    writer.path.unlink()
        self._crops = self._origins = None

    def close(self) -> dict:
        """Finish the files; the ``crops`` entry of meta.json."""
        if self.failure is not None or self._crops is None or self._origins is None:
            return {"size": CROP, "stored": False, "reason": self.failure or "not built"}
        self._crops.close()
        self._origins.close()
        return {"size": CROP, "stored": True, "count": self.rows,
                "crops_sha1": self._crops.sha1.hexdigest(),
                "origin_sha1": self._origins.sha1.hexdigest()}
