"""The Separated Attribute Predictability score (Kumar et al. 2018), as disentanglement_lib
computes it for discrete factors.

For every latent-factor pair, a linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``)
predicts the factor's class from that one latent; its test accuracy fills the score matrix
(latents x factors). For each factor, the gap between the two most predictive latents; the
score is the mean gap. A factor that two latents predict equally well scores 0 however well they
predict it: SAP rewards one latent per factor.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bvae_tui.engine.analysis.metrics.factor_codes import FactorCodePlan, plan_factor_codes
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.tables import Table

TITLE = "SAP"
DEFAULTS = {"num_train": 10_000, "num_test": 5_000}
FAST = {"num_train": 1_000, "num_test": 500}
MAX_DIM = 512  # one SVM per latent and factor: pixels would need 20,000 of them

plan_sap = plan_factor_codes


def top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: largest minus second largest entry (0 with a single row)."""
    ranked = np.sort(np.asarray(matrix, dtype=np.float64), axis=0)
    if ranked.shape[0] < 2:
        return np.zeros(ranked.shape[1])
    return ranked[-1] - ranked[-2]


def score_matrix(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(test accuracy of each latent's SVM for each factor (latents x factors), converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    dim, num_factors = x_train.shape[1], y_train.shape[1]
    out = np.zeros((dim, num_factors))
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always", ConvergenceWarning)
        for k in range(num_factors):
            single = len(np.unique(y_train[:, k])) < 2
            for i in range(dim):
                if single:  # one class in the sample (tiny counts): every guess is that class
                    out[i, k] = float(np.mean(y_test[:, k] == y_train[0, k]))
                    continue
                svm = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                svm.fit(x_train[:, i:i + 1], y_train[:, k])
                out[i, k] = float(np.mean(svm.predict(x_test[:, i:i + 1]) == y_test[:, k]))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return out, converged


def score_sap(plan: FactorCodePlan, table: Table, gt: GroundTruth,
              seed: int = 0) -> dict[str, Any]:
    x_train, x_test = plan.codes(table)
    matrix, converged = score_matrix(x_train, plan.train_factors, x_test, plan.test_factors,
                                     seed)
    gaps = top_two_gap(matrix)
    names = list(gt.names)
    return {"score": float(np.mean(gaps)),
            "per_factor": {names[k]: float(gaps[k]) for k in range(len(gaps))},
            "accuracy": [[float(v) for v in row] for row in matrix], "converged": converged}
