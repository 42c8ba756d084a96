"""Reproducible randomness: the batch order and the RNG states a checkpoint carries.

A resumed run must draw exactly the batches and the noise the uninterrupted run would have drawn,
so a checkpoint holds the batch sampler's state and the torch / CUDA / NumPy / Python RNG states,
as plain tensors and lists (what ``torch.load(weights_only=True)`` accepts).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.train.process import is_cuda


class BatchSampler:
    """Batch indices from shuffled epochs of ``range(n)``, driven by its own seeded generator.

    Its state is the generator state at the start of the current epoch plus the position in it,
    so a resumed run draws exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: str = "cpu"):
        self.n, self.batch_size, self.device = n, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)  # CPU: the same order on any device
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch_state = self.generator.get_state()
        # One host-to-device copy an epoch; slicing it per step needs no transfer and no sync.
        self.perm = torch.randperm(self.n, generator=self.generator).to(self.device)
        self.pos = 0

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.pos == self.n:
                self._new_epoch()
            take = self.perm[self.pos : self.pos + need]
            parts.append(take)
            self.pos += len(take)
            need -= len(take)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_state": self.epoch_state.clone(), "pos": self.pos, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n"]) != self.n:
            raise RunError(f"the dataset now has {self.n} images but the checkpoint was trained "
                           f"on {state['n']}; start a new run")
        self.generator.set_state(state["epoch_state"])
        self._new_epoch()
        self.pos = int(state["pos"])


def rng_state(device: str, sampler: BatchSampler) -> dict[str, Any]:
    """Every RNG state of this process a resumed run needs, and ``sampler``'s position."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "batches": sampler.state_dict(),
    }
    if is_cuda(device):
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: str, sampler: BatchSampler) -> None:
    """Restore what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    sampler.load_state_dict(state["batches"])
    if is_cuda(device) and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
