"""Which class implements each objective, and how the step and the tests build one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from bvae_tui.engine.train.objectives.common import ModelOutput, Objective, recon_distribution
from bvae_tui.engine.train.objectives.dip import DipVAEI, DipVAEII
from bvae_tui.engine.train.objectives.factor import FactorVAE
from bvae_tui.engine.train.objectives.h_b import Burgess, Higgins
from bvae_tui.engine.train.objectives.tcvae import BetaTCVAE

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

OBJECTIVE_CLASSES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Higgins, Burgess, BetaTCVAE, FactorVAE, DipVAEI, DipVAEII)}


def build_objective(cfg: TrainConfig, dist: str | None = None, dataset_size: int | None = None,
                    device: str = "cpu") -> Objective:
    """The objective ``cfg`` names, for a dataset of ``dataset_size`` images (beta-TCVAE's
    estimator needs it), with any network of its own on ``device``. Build it after seeding and
    after the model, so that a run's initial weights depend on its seed alone."""
    try:
        cls = OBJECTIVE_CLASSES[cfg.objective]
    except KeyError:
        raise ValueError(f"unknown objective {cfg.objective!r}") from None
    return cls(cfg, dist or recon_distribution(cfg), dataset_size, device)


def compute_loss(cfg: TrainConfig, logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
                 logvar: torch.Tensor, iteration: int, dist: str | None = None,
                 z: torch.Tensor | None = None, dataset_size: int | None = None) -> dict[str, Any]:
    """The objective's values for one forward pass, for code that trains without the
    :class:`~bvae_tui.engine.train.step.TrainStep` (the textbook loop of `bvae bench`).

    Returns ``loss`` (to backpropagate), ``recon``, ``kl``, ``kl_per_latent`` (tensors), ``c``
    (float for objective B, else None) and the objective's own terms. ``z`` is the sample the
    decoder saw, which beta-TCVAE needs. FactorVAE trains a discriminator alongside: build it
    with :func:`build_objective` instead.
    """
    if cfg.objective == "factor":
        raise ValueError("objective factor trains a discriminator: use build_objective")
    if z is None and cfg.objective == "tcvae":
        raise ValueError("objective tcvae needs the sample z the decoder saw")
    objective = build_objective(cfg, dist, dataset_size, str(x.device))
    out = ModelOutput(x, logits, mu, logvar, mu if z is None else z)
    return objective.loss(out, iteration)
