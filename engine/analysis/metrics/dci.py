"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018), as
disentanglement_lib computes it.

One scikit-learn ``GradientBoostingClassifier()`` (default settings) per factor predicts the
factor's class from all latents; the absolute feature importances form the importance matrix
``R`` (latents x factors). Disentanglement is ``1 - H_K(P_i.)`` of each latent's importance
spread over the K factors, weighted by the latent's share of the total importance; completeness
is ``1 - H_D(P_.j)`` of each factor's importance spread over the D latents, weighted by the
factor's share; informativeness is the classifiers' mean accuracy (train and test).
The score is disentanglement.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bvae_tui.engine.analysis.metrics.factor_codes import FactorCodePlan, plan_factor_codes
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.tables import Table

TITLE = "DCI"
DEFAULTS = {"num_train": 10_000, "num_test": 5_000}
FAST = {"num_train": 1_000, "num_test": 500}
# Boosted trees over every dimension, per factor: fine for latent codes (a run has at most 512),
# hours for raw pixels.
MAX_DIM = 512

plan_dci = plan_factor_codes

# disentanglement_lib adds this before taking entropies, so an all-zero row is uniform, not NaN.
_EPS = 1e-11


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of each distribution along ``axis`` (rows normalised there), base = its length."""
    p = p + _EPS
    p = p / p.sum(axis=axis, keepdims=True)
    n = p.shape[axis]
    if n < 2:  # one outcome: nothing to spread over
        return np.zeros(p.shape[1 - axis])
    return -(p * np.log(p)).sum(axis=axis) / np.log(n)


def disentanglement(importance: np.ndarray) -> float:
    """``sum_i rho_i (1 - H_K(P_i.))``: latents that matter, weighted by how much they matter."""
    importance = np.asarray(importance, dtype=np.float64)
    per_code = 1.0 - _normalised_entropy(importance, axis=1)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(importance: np.ndarray) -> float:
    """``sum_j rho_j (1 - H_D(P_.j))``: each factor captured by few latents, weighted."""
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = 1.0 - _normalised_entropy(importance, axis=0)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def _fit_factor(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
    """(importances, train accuracy, test accuracy) of one factor's boosted trees."""
    from sklearn.ensemble import GradientBoostingClassifier

    if len(np.unique(y_train)) < 2:  # a single class (tiny samples): nothing to learn
        return (np.zeros(x_train.shape[1]), 1.0,
                float(np.mean(y_test == y_train[0])) if len(y_train) else 0.0)
    # random_state only breaks ties between equally good splits; fixed, so a seed repeats.
    model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
    return (np.abs(model.feature_importances_),
            float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def workers() -> int:
    """Threads for the per-factor fits: the CPUs this process may use (tree building releases
    the GIL, so the factors train in parallel)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def score_dci(plan: FactorCodePlan, table: Table, gt: GroundTruth,
              seed: int = 0) -> dict[str, Any]:
    x_train, x_test = plan.codes(table)
    num_factors = plan.train_factors.shape[1]
    # Most classes first, so the longest fits start first and the threads finish together.
    order = sorted(range(num_factors), key=lambda k: -gt.latent_sizes[k])
    with threadpool_limits(1), ThreadPoolExecutor(min(workers(), num_factors)) as pool:
        futures = {k: pool.submit(_fit_factor, x_train, plan.train_factors[:, k], x_test,
                                  plan.test_factors[:, k], seed) for k in order}
        fits = [futures[k].result() for k in range(num_factors)]
    importance = np.stack([f[0] for f in fits], axis=1)  # (latents, factors)
    d = disentanglement(importance)
    return {"score": d, "disentanglement": d, "completeness": completeness(importance),
            "informativeness_train": float(np.mean([f[1] for f in fits])),
            "informativeness_test": float(np.mean([f[2] for f in fits])),
            "importance": [[float(v) for v in row] for row in importance]}
