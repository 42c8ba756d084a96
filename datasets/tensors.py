"""The whole dataset as one uint8 tensor on the training device; batches are drawn by index.

Binary data stays bit-packed (512 bytes an image: dSprites is 377 MB instead of 12 GB of
float32), and each batch is unpacked and converted to float on the device itself, so there is no
per-item DataLoader between the data and the GPU. When the cache holds the 32x32 sprite crops
(``datasets.crops``: dSprites grids), only those are held (128 + 2 bytes an image, 96 MB for
dSprites) and each batch places its unpacked crops into zeroed 64x64 frames on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from bvae_tui.datasets.crops import CROP
from bvae_tui.datasets.loader import IMAGE_SIZE, Dataset


class DeviceImages:
    """``dataset``'s images as one uint8 tensor on ``device``.

    ``crops``: use the dataset's stored 32x32 crops when it has them (default); False always holds
    the full (bit-packed) images.
    """

    def __init__(self, dataset: Dataset, device="cpu", crops: bool = True):
        self.device = torch.device(device)
        self.n = dataset.n
        self.channels = dataset.channels
        self.packed = dataset.packed
        self.binary = dataset.binary
        # A dSprites variant (datasets.dsprites_variants): the stored rows are its base's binary
        # sprites, coloured per batch here on the device; None for every other dataset.
        self.variant = getattr(dataset, "variant", None)
        self.cropped = bool(crops and dataset.packed and dataset.crops is not None)
        if self.cropped:
            self.data = self._fill(dataset.crops.shape, dataset.read_crop_rows)
            # (N, 2) uint8 top-left (row, column) of each crop: 1.5 MB for dSprites
            self.origins = torch.from_numpy(np.array(dataset.crop_origin)).to(self.device)
            self._span = torch.arange(CROP, dtype=torch.int64, device=self.device)
        else:
            self.data = self._fill(tuple(dataset.images.shape), dataset.read_rows)
            self.origins = None
        if self.packed:
            # Bit 7 of byte 0 is pixel 0 (np.packbits' big-endian bit order).
            self._shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=self.device)

    def _fill(self, shape, read):
        """One uint8 tensor of ``shape`` on the device, filled by ``read(start, stop, out=)``.

        Chunk by chunk with plain file reads (not through the memory map, whose touched pages
        would count in this process's RSS on top of the tensor), so the host never holds a second
        full copy.
        """
        shape = tuple(int(s) for s in shape)
        data = torch.empty(shape, dtype=torch.uint8, device=self.device)
        step = max(1, (64 << 20) // max(1, int(np.prod(shape[1:]))))  # ~64 MB a chunk
        on_cpu = self.device.type == "cpu"
        for start in range(0, self.n, step):
            if on_cpu:  # read straight into the tensor: no temporary chunk (BENCH)
                read(start, start + step, out=data[start : start + step].numpy())
                continue
            chunk = torch.from_numpy(read(start, start + step))
            data[start : start + len(chunk)].copy_(chunk)
        return data

    @property
    def nbytes(self) -> int:
        """Bytes held on the device (crops and their origins, or the images)."""
        total = self.data.numel() * self.data.element_size()
        if self.origins is not None:
            total += self.origins.numel() * self.origins.element_size()
        return total

    def batch(self, idx):
        """float32 (B, C, 64, 64) in [0, 1] for the LongTensor ``idx``, made on the device."""
        idx = idx.to(self.device, non_blocking=True)
        x = self._stored(idx)
        return x if self.variant is None else self.variant.apply(x, idx)

    def _stored(self, idx):
        """The stored images at ``idx`` (on the device) as float32 (B, C', 64, 64) in [0, 1]."""
        rows = self.data.index_select(0, idx)
        b = len(idx)
        if self.cropped:
            crop = CROP
            bits = ((rows.unsqueeze(-1) >> self._shifts) & 1).reshape(b, crop * crop)
            origin = self.origins.index_select(0, idx).to(torch.int64)  # (B, 2): row, column
            # Flat 64x64 position of every crop pixel: (r0 + i) * 64 + (c0 + j).
            at = ((origin[:, :1] + self._span) * IMAGE_SIZE).unsqueeze(2) \
                + (origin[:, 1:] + self._span).unsqueeze(1)
            out = torch.zeros(b, IMAGE_SIZE * IMAGE_SIZE, dtype=torch.float32, device=self.device)
            out.scatter_(1, at.reshape(b, crop * crop), bits.to(torch.float32))
            return out.reshape(b, 1, IMAGE_SIZE, IMAGE_SIZE)
        if self.packed:
            bits = (rows.unsqueeze(-1) >> self._shifts) & 1
            return bits.reshape(b, 1, IMAGE_SIZE, IMAGE_SIZE).to(torch.float32)
        x = rows.to(torch.float32)
        return x if self.binary else x.div_(255.0)
