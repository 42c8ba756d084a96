"""Explicitness (Ridgeway & Mozer 2018), as disentanglement_lib computes it.

Latents are standardised with the training points' mean and standard deviation; per factor, a
one-vs-rest logistic regression (scikit-learn ``LogisticRegression`` with the liblinear solver:
that library's default when disentanglement_lib was written) predicts the class from all latents,
and its ROC-AUC, averaged over the classes, measures how linearly the factor can be read off.
The score is the mean test AUC over factors: 0.5 for a code that says nothing about the factors,
1 for one that separates every class. A linear map of the latents (a rotation, a duplicate)
hardly changes it: explicitness measures what a representation holds, not how it is split.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bvae_tui.engine.analysis.metrics.factor_codes import FactorCodePlan, plan_factor_codes
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.tables import Table

TITLE = "Explicitness"
DEFAULTS = {"num_train": 10_000, "num_test": 5_000}
FAST = {"num_train": 1_000, "num_test": 500}
MAX_DIM = 512  # a logistic regression over every dimension per class: hours for raw pixels

plan_explicitness = plan_factor_codes


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest ROC-AUC (classes absent from ``y`` are left out)."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c, cls in enumerate(classes):
        positive = y == cls
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, proba[:, c]))
    return float(np.mean(aucs)) if aucs else 0.5


def explicitness_per_factor(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray,
                            y_test: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(train AUC, test AUC) of one factor's one-vs-rest logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    classes = np.unique(y_train)
    if len(classes) < 2:
        return 0.5, 0.5
    model = LogisticRegression(solver="liblinear", random_state=seed)
    clf = OneVsRestClassifier(model).fit(z_train, y_train)
    return (_auc(y_train, clf.predict_proba(z_train), clf.classes_),
            _auc(y_test, clf.predict_proba(z_test), clf.classes_))


def score_explicitness(plan: FactorCodePlan, table: Table, gt: GroundTruth,
                       seed: int = 0) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning

    x_train, x_test = plan.codes(table)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant latent stays 0, not NaN
    z_train, z_test = (x_train - mean) / std, (x_test - mean) / std
    train, test = [], []
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always", ConvergenceWarning)
        for k in range(plan.train_factors.shape[1]):
            a, b = explicitness_per_factor(z_train, plan.train_factors[:, k], z_test,
                                           plan.test_factors[:, k], seed)
            train.append(a)
            test.append(b)
    names = list(gt.names)
    return {"score": float(np.mean(test)), "explicitness_train": float(np.mean(train)),
            "explicitness_test": float(np.mean(test)),
            "per_factor": {names[k]: float(test[k]) for k in range(len(test))},
            "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught)}
