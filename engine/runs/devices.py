"""Devices: NVIDIA GPUs as NVML numbers them, and turning ``--gpu`` / ``--device`` into a device.

NVML is read through the ``pynvml`` module of ``nvidia-ml-py``. It is optional: with no driver the
device list is just the CPU, together with a one-line reason. NVML numbers GPUs by PCI bus; the
worker sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that ``cuda:N`` is the GPU the picker calls N.

Tests replace :func:`_nvml` with a function returning a stand-in module.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from bvae_tui.engine.errors import DeviceError


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_free: int  # bytes
    memory_total: int  # bytes
    utilization: int | None  # percent, None when the driver does not say
    # CUDA compute capability (major, minor); None when the driver does not say
    capability: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nvml() -> Any:
    """The NVML binding module (replaced by a stand-in in tests)."""
    import pynvml

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def list_gpus() -> tuple[list[GpuInfo], str | None]:
    """The GPUs NVML sees, or ``([], reason)`` when it cannot be used."""
    try:
        nv = _nvml()
    except ImportError:
        return [], "NVML is unavailable: the nvidia-ml-py package is not installed"
    error = getattr(nv, "NVMLError", Exception)
    try:
        nv.nvmlInit()
    except error as exc:
        return [], f"no NVIDIA driver found (NVML: {_text(exc) or type(exc).__name__})"
    except OSError as exc:
        return [], f"no NVIDIA driver found ({exc})"
    try:
        gpus = []
        for i in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: int | None = int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
            except error:
                util = None  # some GPUs (e.g. MIG slices) do not report it
            try:
                major, minor = nv.nvmlDeviceGetCudaComputeCapability(handle)
                capability: tuple[int, int] | None = (int(major), int(minor))
            except (error, AttributeError):  # older drivers and bindings lack the call
                capability = None
            gpus.append(GpuInfo(i, _text(nv.nvmlDeviceGetName(handle)), int(mem.free),
                                int(mem.total), util, capability))
    except error as exc:
        return [], f"NVML failed to list GPUs ({_text(exc) or type(exc).__name__})"
    finally:
        with contextlib.suppress(error):
            nv.nvmlShutdown()
    if not gpus:
        return [], "the NVIDIA driver reports no GPUs"
    return gpus, None


def gpu_spec(gpu: str | int | None) -> str | None:
    """``--gpu`` value (N or auto) as a device spec (``cuda:N`` or ``auto``); None stays None."""
    if gpu is None:
        return None
    text = str(gpu).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return f"cuda:{int(text)}"
    raise DeviceError(f"--gpu must be a GPU number or auto; got {gpu!r} ('bvae gpus' lists them)")


def resolve_device(spec: str) -> str:
    """``cpu`` / ``cuda:N`` / ``auto`` -> ``cpu`` or ``cuda:N`` (checked against NVML).

    ``auto`` picks the GPU with the most free memory, or the CPU when there is none. A GPU that
    does not exist, or any GPU with no NVIDIA driver, is a :class:`DeviceError`.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "cpu":
        return "cpu"
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec == "auto":
        gpus, _ = list_gpus()
        if not gpus:
            return "cpu"
        best = max(gpus, key=lambda g: (g.memory_free, -g.index))
        return f"cuda:{best.index}"
    if spec == "cuda":
        spec = "cuda:0"
    if not (spec.startswith("cuda:") and spec[5:].isdigit()):
        raise DeviceError(f"unknown device {spec!r}; use cpu, cuda:N, --gpu N or --gpu auto")
    index = int(spec[5:])
    gpus, reason = list_gpus()
    if reason:
        raise DeviceError(f"cannot use GPU {index}: {reason}; use the CPU with --device cpu")
    if index not in {g.index for g in gpus}:
        valid = ", ".join(str(g.index) for g in gpus)
        raise DeviceError(f"there is no GPU {index} (GPUs: {valid}); choose one with --gpu N "
                          "('bvae gpus' lists them) or use the CPU with --device cpu")
    return f"cuda:{index}"


def auto_cpu_note() -> str | None:
    """What to tell a user who asked for ``--gpu auto`` when it means the CPU (None: a GPU)."""
    gpus, reason = list_gpus()
    if gpus:
        return None
    return f"--gpu auto: no GPU to use ({reason}); training on the CPU"


def gpu_capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability of ``cuda:N`` as NVML reports it; None for the CPU, or when
    the driver does not say."""
    if not device.startswith("cuda:"):
        return None
    index = int(device[5:])
    gpus, _ = list_gpus()
    return next((g.capability for g in gpus if g.index == index), None)
