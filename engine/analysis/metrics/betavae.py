"""The BetaVAE metric (Higgins et al. 2017), as disentanglement_lib computes it.

Each point: a factor ``k`` drawn at random, two batches that agree on factor ``k`` only, and the
batch mean of ``|r(x1) - r(x2)|``; a logistic regression learns to tell
``k`` from it, and its accuracy on fresh points is the score.

The classifier is fitted on standardised features (each latent's difference scaled by its mean
and spread on the training points) with enough iterations to converge. scikit-learn's defaults on
the raw features (disentanglement_lib's call) stop at 100 lbfgs iterations before converging on
most trained models, the features being neither centred nor scaled: a ConvergenceWarning under
every user's score that they could do nothing about. Higgins et al. used a linear
classifier; standardising keeps it linear, so the score is the same quantity (on a trained
dSprites-mini model it moved by at most 0.004 at 10,000 points; tests/test_betavae_classifier.py
compares the two on fixed inputs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bvae_tui.engine.analysis.metrics.ground_truth import FAST_POOL, POOL, GroundTruth, Pool
from bvae_tui.engine.analysis.metrics.tables import Table, as_floats, chunk_points

TITLE = "BetaVAE"
DEFAULTS = {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000, "pool": POOL}
FAST = {"batch_size": 64, "num_train": 1_000, "num_eval": 500, "pool": FAST_POOL}
# lbfgs iterations: standardised features converge in tens; the cap only guards odd inputs.
MAX_ITER = 1_000


@dataclass
class BetaVAEPlan:
    batch_size: int
    train_labels: np.ndarray  # (P,) factor held fixed
    train_a: np.ndarray  # (P, B) dataset indices of the first batch
    train_b: np.ndarray  # (P, B) second batch, agreeing with the first on the label factor
    eval_labels: np.ndarray
    eval_a: np.ndarray
    eval_b: np.ndarray
    pool: int = 0  # images the batches were drawn from (0: the whole dataset)

    def needed(self) -> list[np.ndarray]:
        return [self.train_a, self.train_b, self.eval_a, self.eval_b]


def _points(gt: GroundTruth, rng: np.random.RandomState, batch_size: int,
            num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.empty(num_points, dtype=np.int64)
    c1 = np.empty((num_points, batch_size, len(gt.sizes)), dtype=np.int64)
    c2 = np.empty_like(c1)
    for p in range(num_points):
        k = rng.randint(gt.num_factors)
        f1 = gt.sample_factors(batch_size, rng)
        f2 = gt.sample_factors(batch_size, rng)
        f2[:, k] = f1[:, k]
        labels[p] = k
        c1[p] = gt.complete(f1, rng)
        c2[p] = gt.complete(f2, rng)
    return labels, gt.indices(c1), gt.indices(c2)


def _pooled_points(gt: GroundTruth, pool: Pool, rng: np.random.RandomState, batch_size: int,
                   num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`_points`, every image drawn from ``pool``: the first batch at random, each
    image of the second among the members that share its partner's class of the label factor."""
    labels = rng.randint(gt.num_factors, size=num_points)
    a = pool.random((num_points, batch_size), rng)
    b = pool.matching(labels[:, None], pool.factors[a, labels[:, None]], rng)
    return labels, pool.indices[a], pool.indices[b]


def plan_beta_vae(gt: GroundTruth, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                  num_eval: int = 5_000, pool: int = 0) -> BetaVAEPlan:
    """``pool``: draw every image from a :class:`Pool` of that many (0: the whole dataset, in
    disentanglement_lib's own draw order)."""
    rng = np.random.RandomState(seed)
    members = gt.pool(pool, seed)
    if members is None:
        tl, ta, tb = _points(gt, rng, batch_size, num_train)
        el, ea, eb = _points(gt, rng, batch_size, num_eval)
    else:
        tl, ta, tb = _pooled_points(gt, members, rng, batch_size, num_train)
        el, ea, eb = _pooled_points(gt, members, rng, batch_size, num_eval)
    return BetaVAEPlan(batch_size, tl, ta, tb, el, ea, eb, len(members) if members else 0)


def _features(table: Table, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``mean_batch |r(x1) - r(x2)|`` per point: ``(P, dim)`` float64."""
    out = np.empty((a.shape[0], table.dim), dtype=np.float64)
    step = chunk_points(a.shape[1] * table.dim)
    for s in range(0, a.shape[0], step):
        # Differences in the table's float precision, averaged in float64.
        ra, rb = as_floats(table(a[s:s + step])), as_floats(table(b[s:s + step]))
        out[s:s + step] = np.abs(ra - rb).mean(axis=1, dtype=np.float64)
    return out


def standardise(x_train: np.ndarray, x_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets scaled by the training points' mean and standard deviation per latent (a
    latent constant on them keeps scale 1: it stays 0, not NaN)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_eval - mean) / std


def score_beta_vae(plan: BetaVAEPlan, table: Table, gt: GroundTruth,
                   seed: int = 0) -> dict[str, Any]:
    """Accuracy of a logistic regression on standardised features predicting the fixed
    factor (see the module's docstring for why standardised)."""
    # scikit-learn here, not at the top: it takes seconds to import, and the package's tables
    # are imported by encoding and benchmarks that never score.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x_train, x_eval = standardise(_features(table, plan.train_a, plan.train_b),
                                  _features(table, plan.eval_a, plan.eval_b))
    model = LogisticRegression(random_state=seed, max_iter=MAX_ITER)
    # One BLAS thread: the problem is small (features = latents), and threaded OpenBLAS spins
    # badly on a busy machine (40x slower measured on 2 shared cores).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, plan.train_labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    train_acc = float(np.mean(model.predict(x_train) == plan.train_labels))
    eval_acc = float(np.mean(model.predict(x_eval) == plan.eval_labels))
    return {"score": eval_acc, "train_accuracy": train_acc, "eval_accuracy": eval_acc,
            "converged": converged, "pool": plan.pool,
            "classifier": "logistic regression on standardised features", **gt.sampling()}
