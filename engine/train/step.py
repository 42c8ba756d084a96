"""One training step: forward, loss, backward, optimiser step.

The trainer's loop (:mod:`bvae_tui.engine.train.trainer`) and the fast side of `bvae bench`
(:mod:`bvae_tui.engine.bench.sides`) both call :class:`TrainStep`, so the bench times the very
step the trainer takes. Nothing here waits for the device: the returned values stay tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.objectives import compute_loss, recon_distribution

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train.adam import Optimizer


class ExtraUpdate(Protocol):
    """An objective's own update, taken after the VAE's in the same step.

    For a second network trained alongside the VAE (e.g. FactorVAE's discriminator) with its own
    optimiser. It sees the batch as the model saw it and the step's values (``mu`` and ``logvar``
    detached), and returns extra terms to log (tensors), which join the step's values.
    """

    def __call__(self, x: torch.Tensor, out: dict[str, Any],
                 iteration: int) -> dict[str, torch.Tensor]: ...


class TrainStep:
    """The VAE's training step on ``device`` with ``cfg``'s objective and fast paths.

    ``net`` is the model as :func:`fastpath.prepare_model` left it (its layout, maybe compiled)
    and ``optimizer`` updates its parameters. ``dist`` is the reconstruction distribution (looked
    up from ``cfg`` when not given).
    """

    def __init__(self, net: torch.nn.Module, optimizer: Optimizer, cfg: TrainConfig,
                 device: str, dist: str | None = None, extra_updates: Sequence[ExtraUpdate] = ()):
        self.net, self.optimizer, self.cfg, self.device = net, optimizer, cfg, device
        self.dist = dist or recon_distribution(cfg)
        self.extra_updates = tuple(extra_updates)

    def __call__(self, batch: torch.Tensor, iteration: int) -> dict[str, Any]:
        """Train on ``batch`` (float images on the device) at 1-based ``iteration``.

        Returns the objective's values (``loss``, ``recon``, ``kl``, ``kl_per_latent``, ``c``:
        see :func:`compute_loss`), the encoder's ``mu`` and ``logvar`` (detached) and whatever
        the extra updates add.
        """
        x = fastpath.to_memory_format(batch, self.cfg)
        with fastpath.autocast(self.cfg, self.device):
            logits, mu, logvar = self.net(x)
        out = compute_loss(self.cfg, logits, x, mu, logvar, iteration, self.dist)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        out["mu"], out["logvar"] = mu.detach(), logvar.detach()
        for update in self.extra_updates:
            out.update(update(x, out, iteration))
        return out
