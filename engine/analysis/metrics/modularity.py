"""Modularity (Ridgeway & Mozer 2018), as disentanglement_lib computes it.

From the latent x factor mutual-information matrix (20-bin histograms, :mod:`.information`): a
latent is modular when it shares information with one factor only. Per latent, with ``m_j`` its
MI with factor ``j``: ``1 - (sum_j m_j^2 - max_j m_j^2) / (max_j m_j^2 (K - 1))``; a latent
sharing nothing with any factor counts 0. The score is the mean over latents, so unused latents
pull it down, and a latent shared equally by all K factors scores 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bvae_tui.engine.analysis.metrics.factor_codes import FactorCodePlan, plan_factor_codes
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.information import discretize, entropy, mutual_info_matrix
from bvae_tui.engine.analysis.metrics.tables import Table

TITLE = "Modularity"
DEFAULTS = {"num_train": 10_000, "num_bins": 20}
FAST = {"num_train": 3_000, "num_bins": 20}


def plan_modularity(gt: GroundTruth, seed: int = 0, num_train: int = 10_000,
                    num_bins: int = 20) -> FactorCodePlan:
    """The training points of disentanglement_lib's modularity (its test points go unused)."""
    return plan_factor_codes(gt, seed, num_train, 0, num_bins)


def modularity_per_latent(mi: np.ndarray) -> np.ndarray:
    """Each latent's modularity from its row of the MI matrix (latents x factors)."""
    squared = np.square(np.asarray(mi, dtype=np.float64))
    top = squared.max(axis=1)
    others = squared.sum(axis=1) - top
    k = squared.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - others / (top * (k - 1)) if k > 1 else np.ones_like(top)
    return np.where(top == 0.0, 0.0, out)


def modularity(mi: np.ndarray) -> float:
    return float(np.mean(modularity_per_latent(mi)))


def score_modularity(plan: FactorCodePlan, table: Table, gt: GroundTruth,
                     seed: int = 0) -> dict[str, Any]:
    codes = np.asarray(table(plan.train_idx), dtype=np.float64)
    mi = mutual_info_matrix(discretize(codes, plan.num_bins), plan.train_factors)
    per_latent = modularity_per_latent(mi)
    return {"score": float(np.mean(per_latent)),
            "per_latent": [float(v) for v in per_latent],
            "mi": [[float(v) for v in row] for row in mi],
            "entropy": [float(v) for v in entropy(plan.train_factors)]}
