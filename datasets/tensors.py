"""The whole dataset as one uint8 tensor on the training device; batches are drawn by index.

Binary data stays bit-packed (512 bytes an image: dSprites is 377 MB instead of 12 GB of
float32), and each batch is unpacked and converted to float on the device itself, so there is no
per-item DataLoader between the data and the GPU.
"""

from __future__ import annotations

import numpy as np

from datasets.loader import IMAGE_SIZE, Dataset


class DeviceImages:
    """``dataset``'s images as one uint8 tensor on ``device``."""

    def __init__(self, dataset: Dataset, device="cpu"):
        import torch

        self.device = torch.device(device)
        self.n = dataset.n
        self.channels = dataset.channels
        self.packed = dataset.packed
        self.binary = dataset.binary
        # Fill one tensor on the device chunk by chunk with plain file reads (not through the
        # memory map, whose touched pages would count in this process's RSS on top of the
        # tensor), so the host never holds a second full copy.
        shape = tuple(dataset.images.shape)
        self.data = torch.empty(shape, dtype=torch.uint8, device=self.device)
        step = max(1, (64 << 20) // max(1, int(np.prod(shape[1:]))))  # ~64 MB a chunk
        on_cpu = self.device.type == "cpu"
        for start in range(0, self.n, step):
            if on_cpu:  # read straight into the tensor: no temporary chunk (BENCH)
                dataset.read_rows(start, start + step, out=self.data[start : start + step].numpy())
                continue
            chunk = torch.from_numpy(dataset.read_rows(start, start + step))
            self.data[start : start + len(chunk)].copy_(chunk)
        if self.packed:
            # Bit 7 of byte 0 is pixel 0 (np.packbits' big-endian bit order).
            self._shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=self.device)

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def batch(self, idx):
        """float32 (B, C, 64, 64) in [0, 1] for the LongTensor ``idx``, made on the device."""
        import torch

        idx = idx.to(self.device, non_blocking=True)
        rows = self.data.index_select(0, idx)
        if self.packed:
            bits = (rows.unsqueeze(-1) >> self._shifts) & 1
            return bits.reshape(len(idx), 1, IMAGE_SIZE, IMAGE_SIZE).to(torch.float32)
        x = rows.to(torch.float32)
        return x if self.binary else x.div_(255.0)
