"""Mixed precision, ``--amp auto|bf16|off``: where bf16 is supported, and where it is faster.

bf16 counts as *supported* where the hardware does bf16 arithmetic itself:

- a CUDA GPU of compute capability 8.0 or newer (torch's own test,
  ``torch.cuda.is_bf16_supported(including_emulation=False)``; cuDNN's bf16 convolutions start
  there too);
- a CPU with AVX512-BF16 or AMX-BF16 (x86) or the BF16 extension (Arm).

Elsewhere PyTorch still runs bf16 by converting around float32 kernels, and slowly: a training
step took 5-8x as long as in float32 on the AVX2 AMD EPYC of benchmarks/RESULTS.md. There an
explicit ``--amp bf16`` is a one-line error, unless ``BVAE_ALLOW_EMULATED_BF16=1`` asks for the
emulation on purpose (to study bf16's numerics on any machine, as RESULTS.md does). Where bf16 is
supported but measured slower, an explicit ``--amp bf16`` is honoured (the user asked).

``auto`` uses bf16 where it is supported *and* measured faster: a few training steps of both
architectures at batch 64, float32 and bf16 in alternation (:func:`measure_gain`), made once per
machine and cached in ``precision.json`` under the user's cache directory. Entries are keyed by
the CPU or GPU model and hold the torch version, so another CPU, GPU or torch measures again;
deleting the file measures again on purpose. Without bf16 hardware ``auto`` is float32 at once.

Torch-free at import: :func:`check_amp` runs in the launching process (CLI, TUI) before a run
exists; :func:`resolve` runs in the training process.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bvae_tui.engine.config import field_info
from bvae_tui.engine.runs.files import read_json, write_json_atomic
from bvae_tui.engine.train.process import is_cuda

ALLOW_EMULATED_ENV = "BVAE_ALLOW_EMULATED_BF16"
CACHE_ENV = "BVAE_CACHE_DIR"
CACHE_FILE = "precision.json"
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 flags; Arm's "Features" say "bf16"
GPU_BF16_CAPABILITY = (8, 0)
MEASURE_ARCHS = ("H", "B")
MEASURE_BATCH = 64  # the default batch size, and the papers'
MIN_GAIN = 1.1  # bf16 must beat float32 by this much on every architecture measured
MAX_LOSS_GAP = 0.02  # relative gap of the first step's loss, bf16 against float32


@dataclass(frozen=True)
class Precision:
    """What a run computes in: ``used`` ("bf16" or "off") for the configured ``amp``, and why."""

    amp: str
    used: str
    reason: str
    gain: dict[str, float] | None = None  # bf16's measured speed over float32's, per arch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return describe(self.to_dict())


def describe(record: Mapping[str, Any]) -> str:
    """A precision as one line, e.g. ``float32 (--amp auto: ...)``, from
    :meth:`Precision.to_dict` (as config.json and the bench record hold it)."""
    name = "bf16 autocast" if record.get("used") == "bf16" else "float32"
    return f"{name} (--amp {record.get('amp', '?')}: {record.get('reason', '')})"


# --------------------------------------------------------------------------------------------
# The hardware


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is no such file)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "CPU"


def cpu_flags() -> frozenset[str]:
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def cpu_bf16_flag() -> str | None:
    """The CPU's bf16 instructions (a flag name), or None."""
    flags = cpu_flags()
    return next((flag for flag in CPU_BF16_FLAGS if flag in flags), None)


def native_bf16(device: str, capability: tuple[int, int] | None = None) -> tuple[bool | None, str]:
    """Whether ``device`` does bf16 arithmetic in hardware, and the fact that says so.

    ``capability`` is a GPU's compute capability; without it a GPU's answer is None (unknown).
    """
    if is_cuda(device):
        if capability is None:
            return None, f"{device}'s compute capability is unknown"
        major, minor = capability
        if tuple(capability) >= GPU_BF16_CAPABILITY:
            return True, f"{device} has compute capability {major}.{minor}"
        return False, (f"{device} has compute capability {major}.{minor}; bf16 hardware starts "
                       "at 8.0")
    flag = cpu_bf16_flag()
    if flag:
        return True, f"the CPU ({cpu_model()}) has {flag}"
    return False, f"the CPU ({cpu_model()}) has no bf16 instructions (avx512_bf16 or amx_bf16)"


def emulation_allowed() -> bool:
    return os.environ.get(ALLOW_EMULATED_ENV, "") not in ("", "0")


def check_amp(amp: str, device: str, capability: tuple[int, int] | None = None) -> None:
    """A one-line :class:`ConfigError` for ``--amp bf16`` on a device without bf16 hardware."""
    if amp != "bf16" or emulation_allowed():
        return
    native, why = native_bf16(device, capability)
    if native is False:
        raise field_info("amp").error(
            f"bf16: {why}, so PyTorch would emulate bf16 at several times float32's cost; use "
            f"--amp auto or off ({ALLOW_EMULATED_ENV}=1 emulates it anyway)")


# --------------------------------------------------------------------------------------------
# The decision


def resolve(amp: str, device: str) -> Precision:
    """What ``--amp amp`` means on ``device`` (the training process; torch is loaded).

    ``auto`` may measure (once per machine, see the module docstring); ``bf16`` where the
    hardware lacks it raises :class:`ConfigError` unless emulation is allowed.
    """
    if amp == "off":
        return Precision("off", "off", "float32 as asked")
    capability = torch_capability(device)
    native, why = native_bf16(device, capability)
    if amp == "bf16":
        check_amp(amp, device, capability)
        if native is False:
            return Precision("bf16", "bf16", f"as asked; emulated, slow: {why} "
                                             f"({ALLOW_EMULATED_ENV}=1)")
        return Precision("bf16", "bf16", f"as asked; {why}")
    if amp != "auto":
        raise ValueError(f"unknown amp mode {amp!r}")
    if not native:
        return Precision("auto", "off", why)
    entry = cached_decision(device)
    return Precision("auto", entry["used"], entry["reason"], entry["gain"])


def torch_capability(device: str) -> tuple[int, int] | None:
    """A CUDA device's compute capability as torch reports it (None for the CPU)."""
    if not is_cuda(device):
        return None
    import torch

    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return major, minor


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model."""
    if is_cuda(device):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def cache_path() -> Path:
    """``precision.json`` in ``$BVAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/bvae-tui``, else
    ``~/.cache/bvae-tui``."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = os.path.join(base, "bvae-tui")
    return Path(root).expanduser() / CACHE_FILE


def cache_key(device: str) -> str:
    """What the cached decision belongs to: the device's model *and* what decides bf16 on it.

    Two virtual CPUs may both call themselves "AMD EPYC", one with AVX2 only and one with
    avx512_bf16; a decision measured on one must not be reused on the other. So the key holds
    the CPU's bf16 flag (or says it has none), and a GPU's compute capability.
    """
    if is_cuda(device):
        import torch

        major, minor = torch.cuda.get_device_capability(torch.device(device))
        return f"cuda: {device_name(device)} (sm {major}.{minor})"
    return f"cpu: {device_name(device)} ({cpu_bf16_flag() or 'no bf16'})"


def cached_decision(device: str) -> dict[str, Any]:
    """This machine's ``auto`` decision for ``device``: from the cache when it holds one for this
    device model and torch version, else measured now (under a lock, so that two runs starting
    together measure once) and saved."""
    import torch

    path, key = cache_path(), cache_key(device)

    def valid(cache: dict[str, Any] | None) -> dict[str, Any] | None:
        entry = (cache or {}).get(key)
        if isinstance(entry, dict) and entry.get("torch") == torch.__version__ \
                and entry.get("used") in ("bf16", "off") and isinstance(entry.get("gain"), dict):
            return entry
        return None

    entry = valid(read_json(path))
    if entry is not None:
        return entry
    with _locked(path):
        cache = read_json(path) or {}
        entry = valid(cache)
        if entry is None:
            entry = decide(device, *measure_gain(device))
            cache[key] = entry
            with contextlib.suppress(OSError):  # an unwritable cache only costs a re-measure
                write_json_atomic(path, cache)
    return entry


def decide(device: str, gain: dict[str, float], loss_gap: float) -> dict[str, Any]:
    """The cache entry for measured ``gain`` (bf16's speed over float32's per arch) and the
    first step's relative ``loss_gap``."""
    import torch

    shown = ", ".join(f"{g:.2f}x (arch {arch})" for arch, g in gain.items())
    where = f"at batch {MEASURE_BATCH} on {device_name(device)}"
    if loss_gap > MAX_LOSS_GAP:
        used, why = "off", (f"bf16's first-step loss was {loss_gap:.1%} off float32's {where}; "
                            "float32 kept")
    elif min(gain.values()) >= MIN_GAIN:
        used, why = "bf16", f"bf16 measured {shown} float32's training speed {where}"
    else:
        used, why = "off", (f"bf16 measured only {shown} float32's training speed {where} "
                            f"(needs {MIN_GAIN:g}x); float32 kept")
    return {"used": used, "reason": f"{why}; cached in {cache_path()}",
            "gain": {k: round(v, 3) for k, v in gain.items()}, "loss_gap": round(loss_gap, 5),
            "device": device_name(device), "torch": torch.__version__,
            "measured": time.time(), "host": platform.node()}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (none where the folder cannot be made or on Windows)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held while measuring
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()  # closing releases the lock


def measure_gain(device: str, archs: Sequence[str] = MEASURE_ARCHS, batch: int = MEASURE_BATCH,
                 rounds: int = 3, steps: int = 2) -> tuple[dict[str, float], float]:
    """bf16's training speed over float32's per architecture, and the first step's loss gap.

    Both precisions train the trainer's step (:class:`TrainStep`) from the same initial weights on
    the same random binary images; each round times ``steps`` steps of each, the one going first
    alternating, and the gain is the median over the rounds of the per-round ratio, which cancels
    most of a drifting load. The loss gap is ``|bf16 - fp32| / fp32`` of the first step's loss.
    Torch's random state is left as it was.
    """
    import torch

    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train import fastpath
    from bvae_tui.engine.train.adam import make_optimizer
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.step import TrainStep

    print(f"precision: measuring bf16 against float32 on {device_name(device)} (once per "
          "machine)", file=sys.stderr, flush=True)

    def sync() -> None:
        if is_cuda(device):
            torch.cuda.synchronize(device)

    gains: dict[str, float] = {}
    gap = 0.0
    forked = [torch.device(device)] if is_cuda(device) else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(0)
        x = (torch.rand(batch, 1, 64, 64, device=device) < 0.1).float()
        for arch in archs:
            step_of, first = {}, {}
            for amp in ("off", "bf16"):
                cfg = TrainConfig(arch=arch, amp=amp, batch_size=batch)
                torch.manual_seed(1)
                model = build_model(arch, 1, cfg.z_dim).to(device)
                net = fastpath.prepare_model(model, cfg)
                step_of[amp] = TrainStep(net, make_optimizer(model.parameters(), cfg, device),
                                         cfg, device, "bernoulli")
                first[amp] = step_of[amp](x, 1)["loss"].item()  # also the warm-up
            gap = max(gap, abs(first["bf16"] - first["off"]) / max(abs(first["off"]), 1e-12))
            ratios = []
            for r in range(rounds):
                took = {}
                for amp in (("off", "bf16") if r % 2 == 0 else ("bf16", "off")):
                    sync()
                    start = time.perf_counter()
                    for i in range(steps):
                        step_of[amp](x, i + 2)
                    sync()
                    took[amp] = time.perf_counter() - start
                ratios.append(took["off"] / took["bf16"])
            gains[arch] = statistics.median(ratios)
    return gains, gap
