"""Where a CPU training process's time goes: user vs kernel time, page faults, memory syscalls.

    .venv/bin/python benchmarks/kernel_time.py [--steps 40] [--batch 64] [--rounds 2] [--strace]

Runs the same training loop (arch H, the trainer's step, channels-last) in fresh processes with
glibc's default allocator behaviour and with the allocator settings of engine/train/process.py,
interleaved, and prints img/s, user and system CPU seconds and minor page faults per step for
each. With --strace (needs strace) it also counts the mmap/munmap/brk calls of one plain run: the
cause of the kernel time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time, torch
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.adam import make_optimizer
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.process import tune_allocator
from bvae_tui.engine.train.step import TrainStep
steps, batch = int(sys.argv[1]), int(sys.argv[2])
tuned = tune_allocator()
cfg = TrainConfig(dataset="dsprites", batch_size=batch, amp="off")
torch.manual_seed(0)
model = build_model("H", 1, 10)
net = fastpath.prepare_model(model, cfg)
train_step = TrainStep(net, make_optimizer(model.parameters(), cfg, "cpu"), cfg, "cpu",
                       "bernoulli")
data = (torch.rand(4096, 1, 64, 64) < 0.05).to(torch.uint8)
def step(i):
    idx = torch.randint(0, len(data), (batch,))
    train_step(data[idx].float(), i + 1)
for i in range(3):
    step(i)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for i in range(steps):
    step(i)
dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
steps = max(steps, 1e-9)  # a 0-step run (start-up only) divides by ~0: ignored
print(json.dumps({"tuned": tuned, "img_per_s": steps * batch / max(dt, 1e-9),
                  "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps}))
"""


def run(plain: bool, steps: int, batch: int, prefix: list[str] | None = None) -> dict:
    from bvae_tui.engine.train.process import MALLOC_ENV, PLAIN_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    env[PLAIN_ENV] = "1" if plain else "0"
    env["PYTHONPATH"] = str(ROOT)
    cmd = [*(prefix or []), sys.executable, "-c", CHILD, str(steps), str(batch)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--strace", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"{'allocator':10} {'img/s':>8} {'user s':>7} {'sys s':>7} {'sys share':>9} "
          f"{'faults/step':>11}")
    for _ in range(args.rounds):
        for plain in (True, False):
            r = run(plain, args.steps, args.batch)
            share = r["sys_s"] / max(1e-9, r["user_s"] + r["sys_s"])
            print(f"{'glibc' if plain else 'tuned':10} {r['img_per_s']:8.0f} {r['user_s']:7.2f} "
                  f"{r['sys_s']:7.2f} {share:9.0%} {r['faults_per_step']:11.0f}")
    if args.strace:
        if not shutil.which("strace"):
            sys.exit("strace is not installed")
        # Start-up (loading torch's libraries) makes thousands of these calls too: count a run
        # with no timed steps and one with --steps, and report the difference per step.
        prefix = ["strace", "-f", "-c", "-e", "trace=mmap,munmap,brk,madvise"]
        print(f"\nmemory syscalls per training step (strace -c, {args.steps} steps minus 0):")
        for plain in (True, False):
            counts = [_syscalls(run(plain, n, args.batch, prefix=prefix)["stderr"])
                      for n in (0, args.steps)]
            per = {k: (counts[1].get(k, 0) - counts[0].get(k, 0)) / args.steps
                   for k in ("mmap", "munmap", "brk", "madvise")}
            print(f"  {'glibc' if plain else 'tuned':6} " + "  ".join(
                f"{k} {v:5.1f}" for k, v in per.items()))


def _syscalls(strace_summary: str) -> dict[str, int]:
    """Call counts from the table `strace -c` prints."""
    counts = {}
    for line in strace_summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            counts[parts[-1]] = int(parts[3])
    return counts


if __name__ == "__main__":
    main()
