"""The Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it.

Each latent is discretised into ``num_bins`` equal-width bins; for every factor, the gap between
the two latents sharing the most mutual information with it, divided by the factor's entropy;
the score is the mean gap over factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
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
    rng = np.random.RandomState(seed)
    factors, classes = [], []
    done = 0
    while done < num_train:  # disentanglement_lib samples MIG points 16 at a time
        n = min(num_train - done, 16)
        f = gt.sample_factors(n, rng)
        factors.append(f)
        classes.append(gt.complete(f, rng))
        done += n
    return MIGPlan(int(num_bins), gt.indices(np.concatenate(classes)), np.concatenate(factors))


def discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Each latent (column) into ``num_bins`` equal-width bins over its own range."""
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def score_mig(plan: MIGPlan, table: Table, gt: GroundTruth,
              seed: int = 0) -> dict[str, Any]:
    """Mean over factors of (largest - second largest MI with a latent) / factor entropy."""
    # scikit-learn here, not at the top: it takes seconds to import, and the package's tables
    # are imported by encoding and benchmarks that never score.
    from sklearn.metrics import mutual_info_score

    codes = np.asarray(table(plan.idx), dtype=np.float64)
    binned = discretize(codes, plan.num_bins)
    num_factors = plan.factors.shape[1]
    mi = np.zeros((codes.shape[1], num_factors))
    for j in range(codes.shape[1]):
        for k in range(num_factors):
            mi[j, k] = mutual_info_score(plan.factors[:, k], binned[:, j])
    entropy = np.array([mutual_info_score(plan.factors[:, k], plan.factors[:, k])
                        for k in range(num_factors)])
    ranked = np.sort(mi, axis=0)[::-1]
    second = ranked[1] if ranked.shape[0] > 1 else np.zeros(num_factors)
    gaps = (ranked[0] - second) / entropy
    names = list(gt.names)
    return {"score": float(np.mean(gaps)),
            "per_factor": {names[k]: float(gaps[k]) for k in range(num_factors)},
            "entropy": [float(h) for h in entropy]}
