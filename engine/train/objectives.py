"""Training objectives H (Higgins) and B (Burgess), with the conventions of REFERENCE.md.

Reconstruction is summed over pixels and averaged over the batch; KL is summed over latents and
averaged over the batch. Keeping these conventions makes the published beta, gamma and C values
mean the same thing here. Nothing in this module synchronises with the device: values stay tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

DISTRIBUTIONS = ("bernoulli", "gaussian")


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


def capacity(iteration: int, cfg: TrainConfig) -> float:
    """Objective B's target KL C at a (1-based) iteration: linear from 0 to c_max, then held."""
    return min(cfg.c_max, cfg.c_max * iteration / cfg.c_stop_iter)


def compute_loss(cfg: TrainConfig, logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                 logvar: torch.Tensor, iteration: int, dist: str | None = None) -> dict[str, Any]:
    """The objective at ``iteration``.

    Returns ``loss`` (to backpropagate), ``recon``, ``kl``, ``kl_per_latent`` (tensors) and ``c``
    (float for objective B, None for H). ``dist`` skips the dataset lookup when already known.
    """
    recon = recon_loss(logits.float(), x.float(), dist or recon_distribution(cfg))
    klz = kl_per_latent(mu.float(), logvar.float())
    kl = klz.sum()
    if cfg.objective == "H":
        c = None
        loss = recon + cfg.beta * kl
    elif cfg.objective == "B":
        c = capacity(iteration, cfg)
        loss = recon + cfg.gamma * (kl - c).abs()
    else:
        raise ValueError(f"unknown objective {cfg.objective!r}")
    return {"loss": loss, "recon": recon, "kl": kl, "kl_per_latent": klz, "c": c}
