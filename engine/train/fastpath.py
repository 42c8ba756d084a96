"""Fast paths for training: process set-up, memory format, autocast, optimiser options, allocator.

Each switch here is kept because `bvae bench` measured it faster than the textbook PyTorch loop on
the same machine, and tests/test_fastpath.py checks that it gives the same losses as the plain path
within floating-point tolerance. What each one does and why:

CPU
- Allocator. glibc malloc serves big buffers with mmap (threshold 128 KiB, raised dynamically
  to the largest freed mmapped chunk) and gives memory back to the kernel as soon as the free
  top of the heap exceeds its trim threshold (2x that). A training step allocates and frees the
  same few dozen activation/gradient buffers of 0.1-8 MiB, so glibc shrinks the heap with brk at
  the end of every step and grows it again in the next, and every re-grown page is a fresh zero
  page: measured with benchmarks/kernel_time.py (arch H, batch 64) ~6 brk calls and ~9,500 minor
  page faults (~37 MB re-zeroed) per step, 20-25% of the process's CPU time in the kernel. Raising
  the mmap threshold and the trim threshold (and padding heap growth) keeps freed memory in the
  process for the next step: 0 brk calls and ~0 faults per step, kernel share ~5%, +15-30% img/s.
  These are the settings PyTorch's CPU performance guidance gives for glibc
  (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_TOP_PAD_``). glibc reads
  those variables only at process start, so instead of re-executing the process we set the same
  three parameters at run time with ``mallopt(3)`` in :func:`configure_process`; that covers the
  foreground ``bvae train`` process and the detached worker alike, and changes no number
  computed. :func:`worker_env` also passes the variables to the detached worker so that they
  hold from its first allocation. Peak RSS is unchanged (measured): freed blocks are reused by
  the next step, and the top pad is address space, not touched memory.
- Channels-last (NHWC) memory format: oneDNN's convolutions run without layout reorders; ~10-20%
  faster for these small conv nets, same results within float tolerance.
- Threads: PyTorch's default (one per physical core) measured best on an idle machine (2 threads:
  ~1.7x one thread); we only lower it when the process's CPU affinity mask (a container's cpuset,
  ``taskset``) allows fewer CPUs. ``OMP_NUM_THREADS`` set by the user always wins.
- Tried and dropped: OpenMP wait policy PASSIVE (waiting threads sleep instead of spinning).
  On this shared machine it won 2-5x while the cores were heavily oversubscribed (load 7-10 on
  2 cores) but lost ~20% whenever they were not (1,380 vs 1,670-1,790 img/s, arch H batch 64),
  so libgomp's default stays. One thread instead of two: the same trade-off.
- Adam without torch.optim (:class:`Adam`): see its docstring; ~1.5 s and ~150 MB less before
  the first step, bit-for-bit the same updates as ``torch.optim.Adam(fused=True)``.

GPU (CUDA)
- Fused Adam (:class:`Adam` calls the fused kernel on every device: one kernel for all
  parameters instead of several per parameter tensor).
- cuDNN autotuning (``cudnn.benchmark``): input shapes are fixed, so the search pays off.
- Channels-last, optional bf16 autocast (``cfg.amp``) and ``torch.compile`` (``cfg.compile``).
  bf16 changes results beyond fp32 tolerance and compile costs start-up time (the time to the first
  step matters here), so both stay off unless asked for.
The dataset stays resident on the GPU (datasets.tensors.DeviceImages) and the trainer keeps log
values on the device, fetching them once per log interval, so the step never waits for the host.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bvae_tui.engine.config import TrainConfig

# glibc mallopt(3) parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# Buffers up to MMAP_THRESHOLD come from the reusable heap: every activation and gradient of a
# 64x64 VAE up to batch ~500. Bigger ones (the dataset tensor, read once) stay mmapped.
# Older glibc releases refuse thresholds above 32 MiB (HEAP_MAX/2); we then fall back to that.
MMAP_THRESHOLD = 64 * 1024 * 1024
MMAP_THRESHOLD_FALLBACK = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024  # never hand freed heap memory back while training runs
TOP_PAD = 64 * 1024 * 1024  # grow the heap in 64 MiB steps instead of one brk per buffer

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    "MALLOC_TOP_PAD_": str(TOP_PAD),
}

# Set BVAE_PLAIN_PROCESS=1 to measure or debug without the allocator settings.
PLAIN_ENV = "BVAE_PLAIN_PROCESS"

_allocator_tuned: bool | None = None


def plain_process() -> bool:
    return os.environ.get(PLAIN_ENV, "") not in ("", "0")


def is_cuda(device: str | torch.device) -> bool:
    return str(device).startswith("cuda")


def tune_allocator() -> bool:
    """Apply the glibc malloc settings above to this process (idempotent).

    Returns True when they are in effect, False where they do not apply (not glibc, or disabled
    by ``BVAE_PLAIN_PROCESS=1``). Safe to call at any time: it only changes how future frees
    and allocations are served.
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    _allocator_tuned = False
    if plain_process():
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here, not at the top: every `import engine` loads this module

    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; find_library would spawn ldconfig
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 or \
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    ok = ok and mallopt(_M_TOP_PAD, TOP_PAD) == 1
    _allocator_tuned = ok
    return ok


def cpu_threads() -> int:
    """Intra-op threads for CPU training: PyTorch's default, capped by the CPU affinity mask."""
    import torch

    threads = torch.get_num_threads()
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or threads
    return max(1, min(threads, allowed))


def configure_process(device: str) -> None:
    """Once per training process, before the model is built."""
    import torch

    tune_allocator()
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(cpu_threads())
    if is_cuda(device):
        # Fixed input shapes: let cuDNN pick the fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True


def use_channels_last(cfg: TrainConfig, device: str) -> bool:
    """Resolve ``cfg.channels_last`` (auto/on/off). Auto: on (measured faster on CPU; on CUDA
    NHWC is the native layout of cuDNN's tensor-core convolutions)."""
    return cfg.channels_last != "off"


def prepare_model(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.nn.Module:
    """Move ``model`` to its memory format and compile it per ``cfg``. Returns the same object.

    ``Module.compile`` compiles in place, so the state dict keeps its keys (checkpoints written
    from a compiled model load into a plain one) and ``encode``/``decode`` stay reachable.
    """
    import torch

    if use_channels_last(cfg, device):
        model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()
    return model


def to_memory_format(x: torch.Tensor, cfg: TrainConfig, device: str) -> torch.Tensor:
    """A batch in the layout the model was prepared for (no copy when it already is)."""
    import torch

    if use_channels_last(cfg, device) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def autocast(cfg: TrainConfig, device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``cfg.amp == "bf16"``; otherwise a null context.

    The losses are computed in float32 either way (bvae_tui.engine.train.objectives casts to float).
    """
    if is_cuda(device) and cfg.amp == "bf16":
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def optimizer_options(device: str) -> dict[str, Any]:
    """Extra keyword arguments for ``torch.optim.Adam``: fused kernels on CUDA.

    On CPU fused Adam measured no faster than the default (foreach) implementation, so it is left
    to PyTorch's default there.
    """
    return {"fused": True} if is_cuda(device) else {}


def make_optimizer(params: Any, cfg: TrainConfig, device: str) -> Adam:
    """The training optimiser: :class:`Adam` with ``cfg``'s learning rate and betas."""
    return Adam(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2))


class Adam:
    """Adam with ``torch.optim.Adam(fused=True)``'s arithmetic and state-dict format.

    Why not ``torch.optim.Adam`` itself: every ``torch.optim`` optimiser imports ``torch._dynamo``
    (with sympy, ~900 modules) the first time one of its methods runs, which costs ~150 MB of
    resident memory and 1-2 s before the first training step - a third of this project's start-up
    and memory budget on a 2-core machine. This class calls the same fused kernel
    (``torch._fused_adam_``, one kernel for all parameters on CPU and CUDA) without that import.
    Its ``state_dict`` is the one ``torch.optim.Adam`` writes (checkpoints load in either), and
    ``load_state_dict`` accepts one written by ``torch.optim.Adam`` (fused, foreach or for-loop).
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params: list[torch.Tensor] = [p for p in params]
        self.param_groups: list[dict[str, Any]] = [{
            "params": self.params, "lr": lr, "betas": tuple(betas), "eps": eps,
            "weight_decay": 0.0, "amsgrad": False, "maximize": False, "foreach": None,
            "capturable": False, "differentiable": False, "fused": True,
            "decoupled_weight_decay": False,
        }]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def _new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def step(self) -> None:
        import torch

        group = self.param_groups[0]
        with torch.no_grad():
            params, grads, avgs, sqs, steps = [], [], [], [], []
            for p in self.params:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._new_state(p)
                params.append(p)
                grads.append(p.grad)
                avgs.append(state["exp_avg"])
                sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                return
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(params, grads, avgs, sqs, [], steps, amsgrad=False,
                               lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                               weight_decay=0.0, eps=float(group["eps"]), maximize=False,
                               grad_scale=None, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        state = {i: dict(self.state[p]) for i, p in enumerate(self.params) if p in self.state}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import torch

        groups = state_dict["param_groups"]
        saved = [i for g in groups for i in g["params"]]
        if len(groups) != 1 or len(saved) != len(self.params):
            raise ValueError("optimizer state does not match the model's parameters")
        for key in ("lr", "betas", "eps"):
            if key in groups[0]:
                self.param_groups[0][key] = groups[0][key]
        self.param_groups[0]["betas"] = tuple(self.param_groups[0]["betas"])
        self.state = {}
        for pos, index in enumerate(saved):
            entry = state_dict["state"].get(index)
            if not entry:
                continue
            p = self.params[pos]
            self.state[p] = {
                "step": torch.as_tensor(entry["step"]).to(dtype=torch.float32, device=p.device),
                "exp_avg": entry["exp_avg"].to(dtype=p.dtype, device=p.device),
                "exp_avg_sq": entry["exp_avg_sq"].to(dtype=p.dtype, device=p.device),
            }


def worker_env(device: str) -> dict[str, str]:
    """Extra environment for the detached worker process.

    The glibc allocator variables (see the module docstring) so that they hold from the first
    allocation (``configure_process`` applies the same values again with mallopt). Nothing is
    added when the user disabled the tuning (``BVAE_PLAIN_PROCESS=1``) or already chose their
    own values.
    """
    if plain_process():
        return {}
    return {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}

