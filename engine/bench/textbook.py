"""The textbook training script, the baseline of the time to first step and the peak RSS.

What the common public implementation does: every image as float32 in memory, a ``DataLoader``,
``torch.optim.Adam``, ``.item()`` each step. Run as its own process
(``python -m bvae_tui.engine.bench.textbook``) by :mod:`bvae_tui.engine.bench.first_step`, which
reads the time of the first step from its stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.engine.bench.first_step import FIRST_STEP_MARK
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.objectives import compute_loss


def textbook_train(device: str, dataset: str, data_dir: str | None, iterations: int,
                   images: int | None) -> int:
    """Load ``images`` (all when None) as float32, then train ``iterations`` steps."""
    ds = open_dataset(dataset, data_dir, prepare_missing=False)
    n = ds.n if not images else min(images, ds.n)
    floats = torch.empty((n, ds.channels, 64, 64), dtype=torch.float32)
    chunk = 16384
    for start in range(0, n, chunk):  # all of it, as float32, before training starts
        stop = min(n, start + chunk)
        floats[start:stop] = torch.from_numpy(ds.float_images_at(np.arange(start, stop)))
    loader = DataLoader(TensorDataset(floats), batch_size=64, shuffle=True, drop_last=True)
    cfg = TrainConfig(dataset=dataset, device=device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.architecture, ds.channels, cfg.z_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for it, (x,) in enumerate(loader):
        if it == iterations:
            break
        x = x.to(device)
        logits, mu, logvar = model(x)
        out = compute_loss(cfg, logits, x, mu, logvar, it + 1, ds.spec.recon)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        out["loss"].item()
        if it == 0:
            print(f"{FIRST_STEP_MARK} {time.time():.6f}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.bench.textbook",
                                     description="the textbook baseline (use `bvae bench`)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--data-dir")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--images", type=int, default=0, help="0: every image")
    args = parser.parse_args(argv)
    return textbook_train(args.device, args.dataset, args.data_dir, args.iterations,
                          args.images or None)


if __name__ == "__main__":
    sys.exit(main())
