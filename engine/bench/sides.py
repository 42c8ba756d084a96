"""The two sides of `bvae bench`, each served by a long-lived child process.

The fast side takes the trainer's path: the dataset resident on the device
(:class:`DeviceImages`), the trainer's batch sampler and its very training step
(:class:`TrainStep`: fast paths, fused Adam, no host sync inside the step), statistics kept on
the device. The baseline is the *textbook loop* and is meant to differ: a ``DataLoader`` over a
float32 NCHW ``TensorDataset``, ``torch.optim.Adam``, the default allocator and thread count,
``.item()`` for log values.

A child answers one JSON request per stdin line with one JSON line on stdout
(``python -m bvae_tui.engine.bench.sides {fast,baseline} --device ...``); the parent's handle is
:class:`bvae_tui.engine.bench.children.Child`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.datasets.tensors import DeviceImages
from bvae_tui.engine.analysis.encode import encode_table
from bvae_tui.engine.bench import flops
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import fastpath, precision
from bvae_tui.engine.train.adam import make_optimizer
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.objectives import compute_loss
from bvae_tui.engine.train.process import configure_process, cpu_threads, is_cuda
from bvae_tui.engine.train.sampler import BatchSampler
from bvae_tui.engine.train.step import TrainStep

SIDES = ("baseline", "fast")


class _Side:
    """What both sides share: the dataset, the config, and the clock."""

    def __init__(self, device: str, dataset: str, data_dir: str | None):
        self.device = device
        self.cfg = TrainConfig(dataset=dataset, device=device)
        self.ds = open_dataset(dataset, data_dir, prepare_missing=False)
        self.n = self.ds.n

    def _sync(self) -> None:
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)

    def _timed(self, step: Callable[[], None], batch: int, seconds: float,
               warmup: int) -> float:
        """img/s of ``step`` over at least ``seconds`` (after ``warmup`` untimed steps)."""
        for _ in range(warmup):
            step()
        self._sync()
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            # No sync inside the loop: a GPU keeps its queue of steps; the clock is read on the
            # host and the queue drained once at the end, so the time is the device's time.
            if time.perf_counter() - start >= seconds:
                self._sync()
                return steps * batch / (time.perf_counter() - start)

    def _model(self, arch: str, z_dim: int) -> torch.nn.Module:
        torch.manual_seed(0)  # both sides start from the same weights
        return build_model(arch, self.ds.channels, z_dim).to(self.device)


class FastSide(_Side):
    """The trainer's path (engine/train/trainer.py), step for step."""

    def __init__(self, device: str, dataset: str, data_dir: str | None):
        configure_process(device)
        super().__init__(device, dataset, data_dir)
        self.images = DeviceImages(self.ds, device)  # the whole dataset, as the trainer has it

    def train(self, arch: str, batch: int, seconds: float, warmup: int, log_every: int,
              amp: str = "off") -> float:
        cfg = self.cfg.replace(batch_size=batch, arch=arch, amp=amp)
        model = self._model(arch, cfg.z_dim)
        model.train()
        net = fastpath.prepare_model(model, cfg)
        step = TrainStep(net, make_optimizer(model.parameters(), cfg, self.device), cfg,
                         self.device, self.ds.spec.recon)
        sampler = BatchSampler(self.n, batch, seed=0, device=self.device)
        stats = torch.zeros(log_every, 3, device=self.device)
        iteration = 0

        def one() -> None:
            nonlocal iteration
            iteration += 1
            out = step(self.images.batch(sampler.next()), iteration)
            with torch.no_grad():  # the trainer keeps log values on the device
                stats[(iteration - 1) % log_every] = torch.stack(
                    (out["loss"], out["recon"], out["kl"]))
            if iteration % log_every == 0:
                stats.mean(0).tolist()  # one transfer per log interval

        return self._timed(one, batch, seconds, warmup)

    def flops(self, arch: str, batch: int) -> float:
        """FLOPs per image of the training step that :meth:`train` times (cached per machine)."""
        return flops.step_flops_per_image(arch, self.cfg.objective, self.ds.channels,
                                          self.cfg.z_dim, batch, self.n)

    def peak(self, kind: str, amp: str, seconds: float, n: int = 2048, arch: str = "H",
             batch: int = 256) -> float:
        """GFLOP/s of a square ``n`` GEMM (``kind`` "gemm") or of ``arch``'s largest
        convolution at ``batch`` ("conv"), in this process (its threads and allocator)."""
        if kind == "gemm":
            return flops.gemm_peak(self.device, amp, n, seconds)
        conv = flops.largest_conv(arch, self.ds.channels, self.cfg.z_dim)
        return flops.conv_peak(self.device, conv, amp, batch, seconds)

    def conv_shape(self, arch: str) -> dict[str, object]:
        """What :meth:`peak` replays for ``kind`` "conv": ``arch``'s largest convolution."""
        conv = flops.largest_conv(arch, self.ds.channels, self.cfg.z_dim)
        return {**conv.to_dict(), "what": conv.describe()}

    def draw(self, batch: int, seconds: float, warmup: int) -> float:
        sampler = BatchSampler(self.n, batch, seed=0, device=self.device)

        def one() -> None:
            fastpath.to_memory_format(self.images.batch(sampler.next()), self.cfg)

        return self._timed(one, batch, seconds, warmup)

    def eval(self, batch: int, images: int, rounds: int = 1) -> float:
        model = self._model("H", 10).eval()
        # What `bvae eval` runs: sorted indices spread over the dataset.
        idx = np.unique(np.linspace(0, self.ds.n - 1, images).astype(np.int64))
        best = 0.0
        for _ in range(rounds):
            start = time.perf_counter()
            encode_table(model, self.ds, idx, self.device, batch_size=batch)
            self._sync()
            best = max(best, len(idx) / (time.perf_counter() - start))
        return best


class BaselineSide(_Side):
    """The textbook loop over a float32 NCHW ``TensorDataset`` of ``images`` random images."""

    def __init__(self, device: str, dataset: str, data_dir: str | None, images: int,
                 seed: int = 0):
        super().__init__(device, dataset, data_dir)
        n = min(images, self.ds.n)
        idx = np.sort(np.random.RandomState(seed).choice(self.ds.n, n, replace=False))
        floats = torch.from_numpy(np.ascontiguousarray(self.ds.float_images_at(idx)))
        self.tensors = TensorDataset(floats)
        self.n = n

    def _loader(self, batch: int) -> Iterator[list[torch.Tensor]]:
        """Endless shuffled batches (a new epoch when one ends), as the textbook does."""
        loader = DataLoader(self.tensors, batch_size=batch, shuffle=True, drop_last=True)
        while True:
            yield from loader

    def train(self, arch: str, batch: int, seconds: float, warmup: int, log_every: int) -> float:
        cfg = self.cfg.replace(batch_size=batch, arch=arch)  # float32: no autocast here
        model = self._model(arch, cfg.z_dim)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        batches = self._loader(batch)
        dist = self.ds.spec.recon
        sums = [0.0, 0.0, 0.0]
        iteration = 0

        def one() -> None:
            nonlocal iteration
            iteration += 1
            (x,) = next(batches)
            x = x.to(self.device)
            logits, mu, logvar = model(x)
            out = compute_loss(cfg, logits, x, mu, logvar, iteration, dist)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            if iteration % log_every == 0:
                for i, k in enumerate(("loss", "recon", "kl")):
                    sums[i] += out[k].item()

        return self._timed(one, batch, seconds, warmup)

    def draw(self, batch: int, seconds: float, warmup: int) -> float:
        batches = self._loader(batch)

        def one() -> None:
            next(batches)[0].to(self.device)

        return self._timed(one, batch, seconds, warmup)

    def eval(self, batch: int, images: int, rounds: int = 1) -> float:
        model = self._model("H", 10).eval()
        count = min(images, self.n)
        loader = DataLoader(Subset(self.tensors, range(count)), batch_size=batch)
        best = 0.0
        for _ in range(rounds):
            start = time.perf_counter()
            with torch.no_grad():
                for (x,) in loader:
                    model.encode(x.to(self.device))[0].cpu()
            self._sync()
            best = max(best, count / (time.perf_counter() - start))
        return best


def serve(side: str, device: str, dataset: str, data_dir: str | None,
          baseline_images: int) -> int:
    """Child process: answer one JSON request per stdin line with one JSON line on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    bench: FastSide | BaselineSide = (
        FastSide(device, dataset, data_dir) if side == "fast"
        else BaselineSide(device, dataset, data_dir, baseline_images))
    info = {"ready": True, "n": bench.n, "threads": torch.get_num_threads(),
            "threads_default": cpu_threads(), "torch": torch.__version__,
            "device_name": precision.device_name(device)}
    if side == "fast":  # what --amp auto picks here (measured once per machine), and whether
        # bf16 figures are worth measuring: on bf16 hardware, or where emulation was asked for
        info["amp_auto"] = precision.resolve("auto", device).to_dict()
        native, _ = precision.native_bf16(device, precision.torch_capability(device))
        info["bf16"] = bool(native) or precision.emulation_allowed()
    out.write(json.dumps(info) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop("op")
        if op == "quit":
            break
        value = getattr(bench, op)(**req)
        out.write(json.dumps({"value": value}) + "\n")
        out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.bench.sides",
                                     description="a benchmark child (use `bvae bench`)")
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--data-dir")
    parser.add_argument("--baseline-images", type=int, default=0)
    args = parser.parse_args(argv)
    return serve(args.side, args.device, args.dataset, args.data_dir, args.baseline_images)


if __name__ == "__main__":
    sys.exit(main())
