"""How far the training step is from the machine's limit: FLOPs counted per step, and peaks.

- :func:`step_flops_per_image`: the FLOPs of one training step (forward, backward and the
  optimiser's update) per image, counted by ``torch.utils.flop_counter.FlopCounterMode`` over the
  trainer's very step (:class:`TrainStep`). The counter counts the matrix products and
  convolutions (the work that sets the limit); elementwise ops, the loss and Adam's update count
  zero there. The count depends on the architecture, the objective, the image shape and torch,
  not on the machine, so it is cached in ``flops.json`` beside the precision cache.
- :func:`gemm_peak` and :func:`conv_peak`: the GFLOP/s this machine reaches on a large square
  matrix product and on the model's largest convolution (:func:`largest_conv`), float32 or bf16,
  measured where they are used (the bench's fast child), so the fraction of peak of a training
  figure is a ratio of two figures measured side by side in one process.

Headless: torch is imported by the functions that need it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bvae_tui.engine.runs.files import read_json, write_json_atomic
from bvae_tui.engine.train.process import is_cuda

if TYPE_CHECKING:
    import torch

FLOPS_CACHE_FILE = "flops.json"
DTYPES = {"off": "float32", "bf16": "bfloat16"}  # the bench's amp names -> torch dtypes


def flops_cache_path() -> Path:
    """``flops.json`` in the directory of the precision cache (``$BVAE_CACHE_DIR``, ...)."""
    from bvae_tui.engine.train.precision import cache_path

    return cache_path().with_name(FLOPS_CACHE_FILE)


def counted_flops(fn: Callable[[], object]) -> int:
    """The FLOPs ``FlopCounterMode`` counts while ``fn`` runs (on any device)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _flops_key(arch: str, objective: str, channels: int, z_dim: int, batch: int) -> str:
    import torch

    return f"{arch}/{objective}/c{channels}/z{z_dim}/b{batch}/torch {torch.__version__}"


def count_step_flops(arch: str, objective: str = "H", channels: int = 1, z_dim: int = 10,
                     batch: int = 64, dataset_size: int = 737_280) -> float:
    """FLOPs per image of one training step, counted now on the CPU in float32 (the count is the
    same in bf16 and on any device: the same products of the same shapes). Torch's random state
    is left as it was."""
    import torch

    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train.adam import make_optimizer
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.objectives import build_objective
    from bvae_tui.engine.train.step import TrainStep

    cfg = TrainConfig(arch=arch, objective=objective, z_dim=z_dim, batch_size=batch, amp="off",
                      channels_last="off")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(cfg.architecture, channels, z_dim)
        model.train()
        objective_ = build_objective(cfg, "bernoulli", dataset_size, "cpu")
        step = TrainStep(model, make_optimizer(model.parameters(), cfg, "cpu"), cfg, "cpu",
                         "bernoulli", objective_)
        x = (torch.rand(batch, channels, 64, 64) < 0.1).float()
        step(x, 1)  # the first step allocates the optimiser's state: count a later one
        total = counted_flops(lambda: step(x, 2))
    return total / batch


def step_flops_per_image(arch: str, objective: str = "H", channels: int = 1, z_dim: int = 10,
                         batch: int = 64, dataset_size: int = 737_280) -> float:
    """:func:`count_step_flops`, from the cache when it holds this count (counted and saved
    otherwise; an unwritable cache only costs a recount)."""
    path, key = flops_cache_path(), _flops_key(arch, objective, channels, z_dim, batch)
    cache = read_json(path) or {}
    value = cache.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    value = count_step_flops(arch, objective, channels, z_dim, batch, dataset_size)
    cache[key] = value
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, cache)
    return value


# --------------------------------------------------------------------------------------------
# Peaks


@dataclass(frozen=True)
class ConvShape:
    """One convolution of a model, as :func:`conv_peak` replays it."""

    transposed: bool
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    side: int  # the input's height = width
    flops_per_image: float  # forward

    def describe(self) -> str:
        kind = "transposed conv" if self.transposed else "conv"
        return (f"{kind} {self.cin}->{self.cout}, {self.kernel}x{self.kernel}, stride "
                f"{self.stride}, on {self.side}x{self.side}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def largest_conv(arch: str, channels: int = 1, z_dim: int = 10) -> ConvShape:
    """The convolution of ``arch`` with the most forward FLOPs per image (the first of equals)."""
    import torch
    from torch import nn

    from bvae_tui.engine.train.models import build_model

    with torch.random.fork_rng(devices=[]):
        model = build_model(arch, channels, z_dim).eval()
    found: list[ConvShape] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        x = args[0]
        flops = counted_flops(lambda: module.forward(x)) / x.shape[0]  # no hooks again
        found.append(ConvShape(isinstance(module, nn.ConvTranspose2d), module.in_channels,
                               module.out_channels, module.kernel_size[0], module.stride[0],
                               module.padding[0], x.shape[-1], flops))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, 64, 64))
    finally:
        for h in handles:
            h.remove()
    return max(found, key=lambda c: c.flops_per_image)  # max keeps the first of equals


def _rate(fn: Callable[[], object], flops: float, device: str, seconds: float,
          warmup: int = 2) -> float:
    """GFLOP/s of ``fn`` (``flops`` per call) over at least ``seconds`` after ``warmup`` calls."""
    import torch

    def sync() -> None:
        if is_cuda(device):
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if time.perf_counter() - start >= seconds:
            sync()  # a GPU's queue is drained once, at the end
            return calls * flops / (time.perf_counter() - start) / 1e9


def gemm_peak(device: str, amp: str = "off", n: int = 2048, seconds: float = 0.5) -> float:
    """GFLOP/s of an ``n`` x ``n`` matrix product in float32 (``amp`` "off") or bf16."""
    import torch

    dtype = getattr(torch, DTYPES[amp])
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(dtype)
    b = torch.randn(n, n, device=device, generator=gen).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return _rate(lambda: torch.mm(a, b, out=out), 2.0 * n**3, device, seconds)


def conv_peak(device: str, conv: ConvShape, amp: str = "off", batch: int = 256,
              seconds: float = 0.5) -> float:
    """GFLOP/s of ``conv``'s forward pass alone at ``batch``, channels-last (the training path's
    layout), in float32 or bf16."""
    import torch
    from torch import nn

    dtype = getattr(torch, DTYPES[amp])
    kind = nn.ConvTranspose2d if conv.transposed else nn.Conv2d
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = kind(conv.cin, conv.cout, conv.kernel, conv.stride, conv.padding)
        x = torch.randn(batch, conv.cin, conv.side, conv.side)
    layer = layer.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    x = x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        flops = counted_flops(lambda: layer(x))
        return _rate(lambda: layer(x), flops, device, seconds)
