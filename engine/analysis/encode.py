"""Encoder means of dataset images as a lookup table, the representation every metric reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bvae_tui.datasets.tensors import DeviceImages
from bvae_tui.engine.analysis.metrics import CodeTable, Table

Progress = Callable[[str, int, int | None], None]

# Images per encoder call on the CPU (256 measured faster than 1024: activations stay in cache);
# GPUs get 8x that.
ENCODE_BATCH = 256


def encode_table(model: torch.nn.Module, dataset: Any, indices: np.ndarray, device: str,
                 batch_size: int | None = None, progress: Progress | None = None,
                 device_images: bool | None = None) -> CodeTable:
    """Encoder means of ``dataset[indices]`` (sorted, unique) as a :class:`CodeTable`.

    Sorted indices read the memory-mapped images mostly in order. On a GPU (``device_images``
    defaults to it) the packed images are uploaded once and unpacked there (``DeviceImages``);
    on the CPU each batch is unpacked by the dataset.
    """
    indices = np.asarray(indices, dtype=np.int64)
    codes, _ = encode_posterior(model, dataset, indices, device, batch_size, progress,
                                device_images, logvar=False)
    return CodeTable(codes, indices, n=int(dataset.n))


def encode_posterior(model: torch.nn.Module, dataset: Any, indices: np.ndarray, device: str,
                     batch_size: int | None = None, progress: Progress | None = None,
                     device_images: bool | None = None, logvar: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(means, log-variances)`` of the encoder on ``dataset[indices]``, float32
    ``(len(indices), z_dim)`` each (log-variances None with ``logvar=False``)."""
    indices = np.asarray(indices, dtype=np.int64)
    codes = np.empty((len(indices), int(model.z_dim)), dtype=np.float32)
    logvars = np.empty_like(codes) if logvar else None
    on_gpu = str(device).startswith("cuda")
    batch_size = batch_size or (8 * ENCODE_BATCH if on_gpu else ENCODE_BATCH)
    # Channels-last convolutions: ~1.5x the images/s of the default layout on this project's
    # 2-core CPU (benchmarks/bench_eval.py). Converts the model in place: a layout change only.
    model.to(memory_format=torch.channels_last)
    source = None
    if on_gpu if device_images is None else device_images:
        source = DeviceImages(dataset, device)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            if source is not None:
                x = source.batch(torch.from_numpy(chunk).to(device))
            else:
                x = torch.from_numpy(np.ascontiguousarray(dataset.float_images_at(chunk)))
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            mu, lv = model.encode(x)
            codes[start:start + len(chunk)] = mu.float().cpu().numpy()
            if logvars is not None:
                logvars[start:start + len(chunk)] = lv.float().cpu().numpy()
            if progress:
                progress("encoding images", start + len(chunk), len(indices))
    return codes, logvars


def model_table_maker(model: torch.nn.Module, dataset: Any, device: str,
                      progress: Progress | None = None) -> Callable[[np.ndarray], Table]:
    return lambda needed: encode_table(model, dataset, needed, device, progress=progress)
