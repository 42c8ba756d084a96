"""The FactorVAE metric (Kim & Mnih 2018), as disentanglement_lib computes it.

Latents are normalised by their global standard deviation (those below ``prune_threshold`` are
dropped as collapsed); each point is a batch with one factor held fixed, and votes for the latent
of least normalised variance. A majority-vote classifier from latent to factor is fitted on the
training votes; its accuracy on the evaluation votes is the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.metrics.ground_truth import FAST_POOL, POOL, GroundTruth, Pool
from bvae_tui.engine.analysis.metrics.tables import Table, as_floats, chunk_points

TITLE = "FactorVAE"
DEFAULTS = {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000,
            "num_variance_estimate": 10_000, "prune_threshold": 0.05, "pool": POOL}
FAST = {"batch_size": 64, "num_train": 1_000, "num_eval": 500,
        "num_variance_estimate": 2_000, "prune_threshold": 0.05, "pool": FAST_POOL}


@dataclass
class FactorVAEPlan:
    prune_threshold: float
    variance_idx: np.ndarray  # (V,) indices for the global variance
    train_labels: np.ndarray  # (P,)
    train_idx: np.ndarray  # (P, B) batches with the label factor held fixed
    eval_labels: np.ndarray
    eval_idx: np.ndarray
    pool: int = 0  # images the batches were drawn from (0: the whole dataset)

    def needed(self) -> list[np.ndarray]:
        return [self.variance_idx, self.train_idx, self.eval_idx]


def _points(gt: GroundTruth, rng: np.random.RandomState, batch_size: int,
            num_points: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.empty(num_points, dtype=np.int64)
    classes = np.empty((num_points, batch_size, len(gt.sizes)), dtype=np.int64)
    for p in range(num_points):
        k = rng.randint(gt.num_factors)
        f = gt.sample_factors(batch_size, rng)
        f[:, k] = f[0, k]
        labels[p] = k
        classes[p] = gt.complete(f, rng)
    return labels, gt.indices(classes)


def _pooled_points(gt: GroundTruth, pool: Pool, rng: np.random.RandomState, batch_size: int,
                   num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_points`, every image drawn from ``pool``: the held class is a random member's,
    the batch drawn among the members that have it."""
    labels = rng.randint(gt.num_factors, size=num_points)
    anchors = pool.random((num_points,), rng)
    held = np.repeat(pool.factors[anchors, labels][:, None], batch_size, axis=1)
    return labels, pool.indices[pool.matching(labels[:, None], held, rng)]


def plan_factor_vae(gt: GroundTruth, seed: int = 0, batch_size: int = 64,
                    num_train: int = 10_000, num_eval: int = 5_000,
                    num_variance_estimate: int = 10_000,
                    prune_threshold: float = 0.05, pool: int = 0) -> FactorVAEPlan:
    """``pool``: draw every image from a :class:`Pool` of that many (0: the whole dataset, in
    disentanglement_lib's own draw order)."""
    rng = np.random.RandomState(seed)
    members = gt.pool(pool, seed)
    if members is None:
        var_idx = gt.indices(gt.complete(gt.sample_factors(num_variance_estimate, rng), rng))
        tl, ti = _points(gt, rng, batch_size, num_train)
        el, ei = _points(gt, rng, batch_size, num_eval)
    else:
        var_idx = members.indices[members.random((num_variance_estimate,), rng)]
        tl, ti = _pooled_points(gt, members, rng, batch_size, num_train)
        el, ei = _pooled_points(gt, members, rng, batch_size, num_eval)
    return FactorVAEPlan(float(prune_threshold), var_idx, tl, ti, el, ei,
                         len(members) if members else 0)


def _votes(table: Table, idx: np.ndarray, labels: np.ndarray, global_var: np.ndarray,
           active: np.ndarray, num_factors: int) -> np.ndarray:
    """Votes ``(num_factors, dim)``: the latent with the least normalised variance per batch."""
    votes = np.zeros((num_factors, table.dim), dtype=np.int64)
    active_ids = np.flatnonzero(active)
    step = chunk_points(idx.shape[1] * table.dim)
    for s in range(0, idx.shape[0], step):
        reps = as_floats(table(idx[s:s + step]))  # (p, B, dim)
        local = reps.var(axis=1, ddof=1, dtype=np.float64)
        ratio = local[:, active_ids] / global_var[active_ids]
        chosen = active_ids[np.argmin(ratio, axis=1)]
        np.add.at(votes, (labels[s:s + step], chosen), 1)
    return votes


def score_factor_vae(plan: FactorVAEPlan, table: Table, gt: GroundTruth,
                     seed: int = 0) -> dict[str, Any]:
    """Majority-vote classifier from latent (least variance) to fixed factor; its accuracy."""
    reps = np.asarray(table(plan.variance_idx), dtype=np.float64)
    global_var = reps.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= plan.prune_threshold
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0,
                **gt.sampling()}
    k = gt.num_factors
    train = _votes(table, plan.train_idx, plan.train_labels, global_var, active, k)
    classifier = np.argmax(train, axis=0)  # factor each latent votes for most often
    cols = np.arange(train.shape[1])
    train_acc = float(train[classifier, cols].sum() / max(1, train.sum()))
    ev = _votes(table, plan.eval_idx, plan.eval_labels, global_var, active, k)
    eval_acc = float(ev[classifier, cols].sum() / max(1, ev.sum()))
    return {"score": eval_acc, "train_accuracy": train_acc, "eval_accuracy": eval_acc,
            "num_active_dims": int(active.sum()), "pool": plan.pool, **gt.sampling()}
