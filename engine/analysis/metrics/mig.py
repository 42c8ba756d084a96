"""The Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it.

Each latent is discretised into ``num_bins`` equal-width bins (:mod:`.information`); for every
factor, the gap between the two latents sharing the most mutual information with it, divided by
the factor's entropy; the score is the mean gap over factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.information import discretize, entropy, mutual_info_matrix
from bvae_tui.engine.analysis.metrics.tables import Table

TITLE = "MIG"
DEFAULTS = {"num_train": 10_000, "num_bins": 20}
FAST = {"num_train": 3_000, "num_bins": 20}


@dataclass
class MIGPlan:
    num_bins: int
    idx: np.ndarray  # (N,)
    factors: np.ndarray  # (N, K) latent factor classes

    def needed(self) -> list[np.ndarray]:
        return [self.idx]


def plan_mig(gt: GroundTruth, seed: int = 0, num_train: int = 10_000,
             num_bins: int = 20) -> MIGPlan:
    idx, factors = gt.sample_points(num_train, np.random.RandomState(seed))
    return MIGPlan(int(num_bins), idx, factors)


def score_mig(plan: MIGPlan, table: Table, gt: GroundTruth,
              seed: int = 0) -> dict[str, Any]:
    """Mean over factors of (largest - second largest MI with a latent) / factor entropy.

    Also returns the whole latent x factor MI matrix (``mi``, nats) and the factors' entropies:
    evaluation records them as the run's information matrix.
    """
    codes = np.asarray(table(plan.idx), dtype=np.float64)
    mi = mutual_info_matrix(discretize(codes, plan.num_bins), plan.factors)
    h = entropy(plan.factors)
    num_factors = plan.factors.shape[1]
    ranked = np.sort(mi, axis=0)[::-1]
    second = ranked[1] if ranked.shape[0] > 1 else np.zeros(num_factors)
    gaps = (ranked[0] - second) / h
    names = list(gt.names)
    return {"score": float(np.mean(gaps)),
            "per_factor": {names[k]: float(gaps[k]) for k in range(num_factors)},
            "mi": [[float(v) for v in row] for row in mi],
            "entropy": [float(v) for v in h]}
