"""One training step: forward, loss, backward, optimiser step.

The trainer's loop (:mod:`bvae_tui.engine.train.trainer`) and the fast side of `bvae bench`
(:mod:`bvae_tui.engine.bench.sides`) both call :class:`TrainStep`, so the bench times the very
step the trainer takes. Nothing here waits for the device: the returned values stay tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.objectives import (
    ModelOutput,
    Objective,
    build_objective,
    recon_distribution,
)

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.train.adam import Optimizer


class TrainStep:
    """The VAE's training step on ``device`` with ``cfg``'s objective and fast paths.

    ``net`` is the model as :func:`fastpath.prepare_model` left it (its layout, maybe compiled)
    and ``optimizer`` updates its parameters. ``dist`` is the reconstruction distribution (looked
    up from ``cfg`` when not given). ``objective`` is the run's
    :class:`~bvae_tui.engine.train.objectives.Objective` (built from ``cfg`` when not given,
    which works for the objectives that need no dataset size): the seam where an objective adds
    its terms, and trains a network of its own after the VAE's update.
    """

    def __init__(self, net: torch.nn.Module, optimizer: Optimizer, cfg: TrainConfig,
                 device: str, dist: str | None = None, objective: Objective | None = None):
        self.net, self.optimizer, self.cfg, self.device = net, optimizer, cfg, device
        self.dist = dist or recon_distribution(cfg)
        self.objective = objective or build_objective(cfg, self.dist, device=device)

    def __call__(self, batch: torch.Tensor, iteration: int) -> dict[str, Any]:
        """Train on ``batch`` (float images on the device) at 1-based ``iteration``.

        Returns the objective's values (``loss``, ``recon``, ``kl``, ``kl_per_latent``, ``c`` and
        its own terms: see :class:`~bvae_tui.engine.train.objectives.Objective`), and the
        encoder's ``mu`` and ``logvar`` (detached).
        """
        x = fastpath.to_memory_format(batch, self.cfg)
        with fastpath.autocast(self.cfg, self.device):
            logits, mu, logvar, z = self.net(x, return_z=True)
        model_out = ModelOutput(x, logits, mu, logvar, z)
        out = self.objective.loss(model_out, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        out["mu"], out["logvar"] = mu.detach(), logvar.detach()
        out.update(self.objective.update(model_out, iteration))
        return out
