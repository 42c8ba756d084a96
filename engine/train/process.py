"""Process set-up for training and encoding: the glibc allocator, CPU threads, cuDNN autotuning.

Torch-free at import: ``launch`` (used by the CLI and the TUI) reads :func:`worker_env` without
paying for ``import torch``. What each setting does and what it measured: benchmarks/RESULTS.md,
"The fast paths".
"""

from __future__ import annotations

import os
import sys

# glibc mallopt(3) parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# A training step frees and re-allocates the same activation and gradient buffers every step.
# With glibc's defaults the freed top of the heap is trimmed at once and every re-grown page is a
# fresh zero page; these values keep freed memory in the process for the next step.
# Buffers up to MMAP_THRESHOLD come from the reusable heap: every activation and gradient of a
# 64x64 VAE up to batch ~500. Bigger ones (the dataset tensor, read once) stay mmapped.
# Older glibc releases refuse thresholds above 32 MiB (HEAP_MAX/2); we then fall back to that.
MMAP_THRESHOLD = 64 * 1024 * 1024
MMAP_THRESHOLD_FALLBACK = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024  # never hand freed heap memory back while training runs
TOP_PAD = 64 * 1024 * 1024  # grow the heap in 64 MiB steps instead of one brk per buffer

# The same settings as environment variables (PyTorch's CPU guidance for glibc); glibc reads them
# only at process start, so they are for child processes (see worker_env).
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


def is_cuda(device: object) -> bool:
    """``device`` (a string or a torch.device) names a CUDA device."""
    return str(device).startswith("cuda")


def tune_allocator() -> bool:
    """Apply the glibc malloc settings above to this process (idempotent).

    Returns True when they are in effect, False where they do not apply (not glibc, or disabled
    by ``BVAE_PLAIN_PROCESS=1``). Safe to call at any time: it only changes how future frees
    and allocations are served, never a number computed.
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    _allocator_tuned = False
    if plain_process():
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only the training processes need it

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
    """Intra-op threads for CPU training: PyTorch's default, capped by the CPU affinity mask.

    PyTorch's default (one per physical core) measured best on an idle machine; a container's
    cpuset or ``taskset`` may allow fewer CPUs than that, and more threads than CPUs only contend.
    """
    import torch  # inside: this module stays importable without torch (see the docstring)

    threads = torch.get_num_threads()
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or threads
    return max(1, min(threads, allowed))


def configure_process(device: str) -> None:
    """Once per training or encoding process, before the model is built."""
    import torch  # inside: see cpu_threads

    tune_allocator()
    if not os.environ.get("OMP_NUM_THREADS"):  # the user's own choice wins
        torch.set_num_threads(cpu_threads())
    if is_cuda(device):
        # Fixed input shapes: let cuDNN pick the fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True


def worker_env() -> dict[str, str]:
    """Extra environment for a detached training worker, whatever its device.

    The glibc allocator variables, so that they hold from its first allocation
    (``configure_process`` applies the same values again with mallopt); a GPU run's host side
    allocates too. Nothing is added when the user disabled the tuning (``BVAE_PLAIN_PROCESS=1``)
    or already chose their own values.
    """
    if plain_process():
        return {}
    return {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
