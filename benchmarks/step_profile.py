"""Where a training step's time goes, against the machine's limit (issue 24).

    .venv/bin/python benchmarks/step_profile.py profile [--arch H] [--amp off] [--batch 64]
    .venv/bin/python benchmarks/step_profile.py levers  [--arch H] [--amp off] [--batch 64]
                                                        [--no-compile]

``profile``: ``torch.profiler`` over the trainer's step (:class:`TrainStep`), the self CPU time
of every operator summed into shares: convolution forward, its backward, matrix products,
elementwise (activations, copies, fills, their gradients), the loss (every op under the
objective's ``loss``), the optimiser (every op under its ``step``), and the rest of the wall
time ("Python": interpreter, dispatch, autograd bookkeeping).

``levers``: GFLOP/s and the fraction of the float32/bf16 GEMM peak of variants of the step, all
in this process, in alternating rounds (ABBA), each round also measuring the GEMM peak, so the
ratios hold on a loaded machine. Variants: the current step; channels-last off; the threads
(1 against the default); torch.optim.Adam foreach; ``torch.compile`` (its compile time printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bvae_tui.engine.bench import flops
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.adam import make_optimizer
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.process import configure_process
from bvae_tui.engine.train.step import TrainStep

CONV = {"aten::mkldnn_convolution", "aten::_convolution", "aten::convolution",
        "aten::_mkldnn_convolution", "aten::slow_conv_transpose2d", "aten::conv2d",
        "aten::conv_transpose2d"}
MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"}


def make_step(arch: str, amp: str, batch: int, optimizer: str = "fast",
              **cfg_changes: object) -> TrainStep:
    cfg = TrainConfig(arch=arch, amp=amp, batch_size=batch, **cfg_changes)
    torch.manual_seed(0)
    model = build_model(arch, 1, cfg.z_dim)
    model.train()
    net = fastpath.prepare_model(model, cfg)
    if optimizer == "foreach":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
    else:
        opt = make_optimizer(model.parameters(), cfg, "cpu")
    return TrainStep(net, opt, cfg, "cpu", "bernoulli")


def batch_of(batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(batch, 1, 64, 64, generator=g) < 0.1).float()


def scope(label: str, fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        with record_function(label):
            return fn(*args, **kwargs)
    return wrapped


def breakdown(arch: str, amp: str, batch: int, steps: int) -> None:
    step = make_step(arch, amp, batch)
    step.objective.loss = scope("bvae::loss", step.objective.loss)
    step.optimizer.step = scope("bvae::optimizer", step.optimizer.step)
    x = batch_of(batch)
    for i in range(5):
        step(x, i + 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for i in range(steps):
            step(x, 10 + i)
        wall = (time.perf_counter() - start) * 1e6  # us, as the profiler counts
    shares = dict.fromkeys(("conv forward", "conv backward", "matmul", "elementwise", "loss",
                            "optimiser"), 0.0)
    for ev in prof.events():
        if ev.name.startswith("bvae::"):
            continue
        parent, under = ev.cpu_parent, None
        while parent is not None:
            if parent.name.startswith("bvae::"):
                under = parent.name
            parent = parent.cpu_parent
        if under == "bvae::optimizer":
            key = "optimiser"
        elif under == "bvae::loss":
            key = "loss"
        elif ev.name == "aten::convolution_backward":
            key = "conv backward"
        elif ev.name in CONV:
            key = "conv forward"
        elif ev.name in MATMUL:
            key = "matmul"
        else:
            key = "elementwise"
        shares[key] += ev.self_cpu_time_total
    shares["Python, dispatch, autograd"] = max(0.0, wall - sum(shares.values()))
    fl = flops.count_step_flops(arch, batch=batch) * batch
    print(f"arch {arch}, {amp}, batch {batch}, {torch.get_num_threads()} threads, "
          f"{wall / steps / 1e3:.1f} ms a step, {fl * steps / wall / 1e3:.1f} GFLOP/s, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| share | ms a step | % |\n|---|---:|---:|")
    for key, us in shares.items():
        print(f"| {key} | {us / steps / 1e3:.2f} | {100 * us / wall:.0f}% |")


def rate(step: TrainStep, x: torch.Tensor, seconds: float, it: list[int]) -> float:
    """img/s of ``step`` over ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        it[0] += 1
        step(x, it[0])
        n += 1
        if time.perf_counter() - start >= seconds:
            return n * x.shape[0] / (time.perf_counter() - start)


def levers(arch: str, amp: str, batch: int, rounds: int, seconds: float,
           compile_step: bool = True) -> None:
    default = torch.get_num_threads()
    variants: dict[str, tuple[TrainStep, int]] = {
        "current": (make_step(arch, amp, batch), default),
        "channels-last off": (make_step(arch, amp, batch, channels_last="off"), default),
        "torch.optim.Adam foreach": (make_step(arch, amp, batch, optimizer="foreach"), default),
    }
    if default > 1:
        variants["1 thread"] = (make_step(arch, amp, batch), 1)
    x = batch_of(batch)
    if compile_step:  # two minutes of compiling on a 2-core CPU: --no-compile skips it
        compiled = make_step(arch, amp, batch, compile=True)
        start = time.perf_counter()
        for i in range(3):
            compiled(x, i + 1)
        print(f"torch.compile: first 3 steps took {time.perf_counter() - start:.1f} s "
              "(compile time)", flush=True)
        variants["torch.compile"] = (compiled, default)
    its = {k: [5] for k in variants}
    for name, (step, threads) in variants.items():
        torch.set_num_threads(threads)
        for _ in range(3):
            its[name][0] += 1
            step(x, its[name][0])
    fl = flops.count_step_flops(arch, batch=batch)
    got: dict[str, list[float]] = {k: [] for k in variants}
    peaks: list[float] = []
    names = list(variants)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            step, threads = variants[name]
            torch.set_num_threads(threads)
            got[name].append(rate(step, x, seconds, its[name]))
        torch.set_num_threads(default)
        peaks.append(flops.gemm_peak("cpu", amp, 2048, 0.3))
    peak = statistics.median(peaks)
    print(f"arch {arch}, {amp}, batch {batch}: GEMM peak {peak:.1f} GFLOP/s (median of "
          f"{rounds}), load {os.getloadavg()[0]:.1f}")
    print("| variant | img/s | GFLOP/s | of peak | vs current |\n|---|---:|---:|---:|---:|")
    for name, values in got.items():
        ips = statistics.median(values)
        ratio = statistics.median(v / c for v, c in zip(values, got["current"], strict=True))
        print(f"| {name} | {ips:,.0f} | {fl * ips / 1e9:.1f} | {fl * ips / 1e9 / peak:.0%} | "
              f"{ratio:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("profile", "levers"))
    parser.add_argument("--arch", default="H", choices=("H", "B"))
    parser.add_argument("--amp", default="off", choices=("off", "bf16"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--no-compile", action="store_true",
                        help="levers: leave out the torch.compile variant (its compile time)")
    args = parser.parse_args(argv)
    configure_process("cpu")
    if args.mode == "profile":
        breakdown(args.arch, args.amp, args.batch, args.steps)
    else:
        levers(args.arch, args.amp, args.batch, args.rounds, args.seconds,
               compile_step=not args.no_compile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
