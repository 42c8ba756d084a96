"""The model's and the batches' layout and precision: channels-last, compile, bf16 autocast.

Each switch stays because `bvae bench` measured it faster than the textbook PyTorch loop on the
same machine (benchmarks/RESULTS.md, "The fast paths"), and tests/test_fastpath.py checks that it
gives the same losses as the plain path within floating-point tolerance. Process set-up (the
allocator, threads) is in :mod:`bvae_tui.engine.train.process`, the optimiser in
:mod:`bvae_tui.engine.train.adam`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch

from bvae_tui.engine.train.process import is_cuda

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig


def use_channels_last(cfg: TrainConfig) -> bool:
    """Resolve ``cfg.channels_last`` (auto/on/off). Auto is on for every device: oneDNN's CPU
    convolutions then run without layout reorders, and NHWC is the native layout of cuDNN's
    tensor-core convolutions."""
    return cfg.channels_last != "off"


def prepare_model(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """Move ``model`` to its memory format and compile it per ``cfg``. Returns the same object.

    ``Module.compile`` compiles in place, so the state dict keeps its keys (checkpoints written
    from a compiled model load into a plain one) and ``encode``/``decode`` stay reachable.
    """
    if use_channels_last(cfg):
        model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()
    return model


def to_memory_format(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """A batch in the layout the model was prepared for (no copy when it already is)."""
    if use_channels_last(cfg) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(cfg: TrainConfig, device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on the CPU or CUDA when ``cfg.amp == "bf16"``; a null context for "off".

    ``auto`` is resolved per machine before training (:mod:`bvae_tui.engine.train.precision`).
    The losses are computed in float32 either way (bvae_tui.engine.train.objectives casts to
    float), and so are the latent statistics (the model's forward).
    """
    if cfg.amp == "bf16":
        return torch.autocast("cuda" if is_cuda(device) else "cpu", dtype=torch.bfloat16)
    if cfg.amp == "off":
        return contextlib.nullcontext()
    raise ValueError(f"amp {cfg.amp!r} must be resolved to bf16 or off first (precision.resolve)")
