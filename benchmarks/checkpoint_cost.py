"""What one checkpoint costs, beside what one training step costs, on this machine.

    .venv/bin/python benchmarks/checkpoint_cost.py [--repeats 15] [--batch-size 64]

For each architecture (H and B, 1 channel, 10 latents, as for dSprites; and H with 3 channels
and 32 latents, as for CelebA) it builds the model and its Adam state after one step, then times
the trainer's checkpoint (``save_checkpoint`` with the previous one kept: tensors to the CPU,
``torch.save``, fsync, hard link, rename) and one training step of ``--batch-size`` images,
alternating them. It prints medians, the file size, and the checkpoint's cost in training
steps. The default of ``--checkpoint-minutes`` is chosen from these (README, RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(arch: str, channels: int, z_dim: int, batch: int, repeats: int,
            folder: Path) -> dict[str, float]:
    import torch

    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train.adam import make_optimizer
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.step import TrainStep

    torch.manual_seed(0)
    cfg = TrainConfig(dataset="dsprites-mini", arch=arch, z_dim=z_dim, device="cpu")
    model = build_model(arch, channels, z_dim)
    optimizer = make_optimizer(model.parameters(), cfg, "cpu")
    step = TrainStep(model, optimizer, cfg, "cpu", "bernoulli")
    x = (torch.rand(batch, channels, 64, 64) < 0.1).float()
    step(x, 1)  # Adam's moments exist, as in any real checkpoint
    last, prev = folder / f"{arch}{channels}-last.pt", folder / f"{arch}{channels}-prev.pt"
    saves, steps = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        save_checkpoint(last, {"format": 1, "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "iteration": i},
                        keep=prev)
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step(x, i + 2)
        steps.append(time.perf_counter() - t0)
    save_s, step_s = statistics.median(saves), statistics.median(steps)
    return {"save_ms": 1000 * save_s, "step_ms": 1000 * step_s, "steps": save_s / step_s,
            "mb": last.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}, batch {args.batch_size}")
    with tempfile.TemporaryDirectory(prefix="bvae-ckpt-", dir=ROOT) as tmp:  # the repo's disk
        for arch, channels, z_dim in (("H", 1, 10), ("B", 1, 10), ("H", 3, 32)):
            r = measure(arch, channels, z_dim, args.batch_size, args.repeats, Path(tmp))
            print(f"arch {arch}, {channels} channel(s), z {z_dim}: checkpoint "
                  f"{r['save_ms']:.0f} ms ({r['mb']:.1f} MB), step {r['step_ms']:.0f} ms; "
                  f"a checkpoint costs {r['steps']:.2f} steps", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
