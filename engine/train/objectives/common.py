"""What every objective shares: the reconstruction term, the KL of each latent, the Gaussian log
density, and the :class:`Objective` interface the training step calls.

Conventions (REFERENCE.md): reconstruction is summed over pixels and averaged over the batch; KL
is summed over latents and averaged over the batch. Keeping them makes the published beta, gamma
and C values mean the same thing here. Nothing in this package synchronises with the device:
values stay tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from bvae_tui.engine.objective_info import OBJECTIVE_INFO

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

DISTRIBUTIONS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) of each latent, averaged over the batch: shape (Z,)."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)


def recon_loss(logits: torch.Tensor, x: torch.Tensor, dist: str) -> torch.Tensor:
    """Negative log-likelihood per image (summed over pixels), averaged over the batch.

    bernoulli: binary cross-entropy with logits (binary data such as dSprites);
    gaussian: squared error of sigmoid(logits), the unit-variance Gaussian up to a constant.
    """
    batch = x.shape[0]
    if dist == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / batch
    if dist == "gaussian":
        return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / batch
    raise ValueError(f"unknown reconstruction distribution {dist!r}; expected {DISTRIBUTIONS}")


def recon_distribution(cfg: TrainConfig) -> str:
    """The distribution actually used: ``cfg.recon``, or the dataset's default when ``auto``."""
    if cfg.recon != "auto":
        return cfg.recon
    from bvae_tui.datasets.registry import get_spec

    return get_spec(cfg.dataset).recon


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting), per dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


@dataclass
class ModelOutput:
    """One forward pass, as an objective sees it: the batch ``x`` as the model saw it, the
    decoder's ``logits``, the encoder's ``mu`` and ``logvar`` and the sample ``z`` decoded."""

    x: torch.Tensor
    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class Objective:
    """A training objective for one run.

    :meth:`loss` gives the values the step backpropagates and logs: ``loss``, ``recon``, ``kl``
    (the analytic KL, whatever the objective penalises), ``kl_per_latent``, ``c`` (objective B's
    capacity, else None) and each of :attr:`terms` (0-d tensors). An objective that trains a
    network of its own (FactorVAE's discriminator) does so in :meth:`update`, after the VAE's
    step, and keeps the network and its optimiser in :meth:`state_dict` for the checkpoint.
    """

    name: ClassVar[str] = ""

    def __init__(self, cfg: TrainConfig, dist: str, dataset_size: int | None = None,
                 device: str = "cpu"):
        self.cfg, self.dist, self.dataset_size, self.device = cfg, dist, dataset_size, device

    @property
    def terms(self) -> tuple[str, ...]:
        """The metrics-row fields this objective logs besides loss, recon and KL."""
        return OBJECTIVE_INFO[self.name].terms

    def elbo_parts(self, out: ModelOutput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, KL per latent and total KL, in float32 (autocast or not)."""
        recon = recon_loss(out.logits.float(), out.x.float(), self.dist)
        klz = kl_per_latent(out.mu.float(), out.logvar.float())
        return recon, klz, klz.sum()

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, out: ModelOutput, iteration: int) -> dict[str, torch.Tensor]:
        """The objective's own training after the VAE's step; returns terms to log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue exactly (nothing for most objectives)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
