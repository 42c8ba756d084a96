"""Training and test points with their factor classes: the samples of DCI, SAP, modularity and
explicitness.

disentanglement_lib draws ``num_train`` points, then ``num_test`` points, from one seeded random
state, 16 at a time (``generate_batch_factor_code``); each metric that uses this plan draws the
same way, so with the same seed and sizes they all read the same points (encoded once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.tables import Table


@dataclass
class FactorCodePlan:
    train_idx: np.ndarray  # (N,) dataset indices
    train_factors: np.ndarray  # (N, K) latent factor classes
    test_idx: np.ndarray  # (M,)
    test_factors: np.ndarray  # (M, K)
    num_bins: int = 20  # histogram bins, where a metric discretises the latents

    def needed(self) -> list[np.ndarray]:
        return [self.train_idx, self.test_idx]

    def codes(self, table: Table) -> tuple[np.ndarray, np.ndarray]:
        """``(train codes (N, dim), test codes (M, dim))`` as float64."""
        return (np.asarray(table(self.train_idx), dtype=np.float64),
                np.asarray(table(self.test_idx), dtype=np.float64))


def plan_factor_codes(gt: GroundTruth, seed: int = 0, num_train: int = 10_000,
                      num_test: int = 5_000, num_bins: int = 20) -> FactorCodePlan:
    rng = np.random.RandomState(seed)
    train_idx, train_factors = gt.sample_points(num_train, rng)
    test_idx, test_factors = gt.sample_points(num_test, rng)
    return FactorCodePlan(train_idx, train_factors, test_idx, test_factors, int(num_bins))
