"""UDR, the Unsupervised Disentanglement Ranking (Duan et al. 2020), as disentanglement_lib
computes it (``udr_sklearn``).

The idea: disentangled representations of the same data are alike up to a permutation and signs
of their latents, while entangled ones differ from seed to seed in their own ways. So UDR scores
each model of a group trained with the same settings and different seeds by how similar it is
to the others, and needs no ground-truth factors.

For each ordered pair of models (a, b), on the same images: each model's encoder means are
standardised; latents whose KL (averaged over the images) is at most 0.01 nats are zeroed; a
Lasso regression (alpha 0.1) predicts b's latents from a's, and the absolute coefficients form
the similarity matrix ``R`` (a's latents x b's latents). Keeping only the latents with KL above
``kl_threshold`` on each side, the pair's score is the mean of two relative strengths:
``mean_rows(max_row(R)^2 / sum_row(R))`` and the same over columns (0 for an empty row). A
model's UDR is the median of the pair scores (other, model) over the other models.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

DEFAULTS = {"num_points": 1_000, "kl_threshold": 0.01, "alpha": 0.1}
CORRELATIONS = ("lasso", "spearman")
# disentanglement_lib zeroes latents at or below this KL before the regression, whatever the
# filtering threshold.
ZERO_KL = 0.01


def _strength(r: np.ndarray, axis: int) -> float:
    """Mean over the other axis of ``max^2 / sum`` along ``axis`` (empty lines count 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.square(r.max(axis=axis)) / r.sum(axis=axis)
    return float(np.mean(np.nan_to_num(per, nan=0.0, posinf=0.0)))


def relative_strength(r: np.ndarray) -> float:
    """A similarity matrix's disentanglement: 1 for a (scaled) permutation, lower when latents
    share; 0 for an empty or all-zero matrix."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    if r.size == 0:
        return 0.0
    return (_strength(r, axis=0) + _strength(r, axis=1)) / 2.0


def lasso_similarity(a: np.ndarray, b: np.ndarray, alpha: float = 0.1,
                     seed: int = 0) -> np.ndarray:
    """``|coef|`` of a Lasso predicting b's latents from a's: (a's latents, b's latents)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Lasso(alpha=alpha, random_state=seed).fit(a, b)
    coef = np.atleast_2d(model.coef_)  # (b's latents, a's latents)
    return np.abs(coef).T


def spearman_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|Spearman correlation|`` of every latent of a with every latent of b (constant: 0)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra, rb = ra - ra.mean(axis=0), rb - rb.mean(axis=0)
    na, nb = np.sqrt((ra ** 2).sum(axis=0)), np.sqrt((rb ** 2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (ra.T @ rb) / np.outer(na, nb)
    return np.abs(np.nan_to_num(corr, nan=0.0))


def _standardised(codes: np.ndarray, kl: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    std = codes.std(axis=0)
    z = (codes - codes.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return z * (np.asarray(kl) > ZERO_KL)


def udr_scores(codes: Sequence[np.ndarray], kl: Sequence[np.ndarray], seed: int = 0,
               correlation: str = "lasso", kl_threshold: float = 0.01,
               alpha: float = 0.1) -> dict[str, Any]:
    """UDR of each of ``codes`` (encoder means of the same images, one array per model) given
    each model's KL per latent; returns ``{"scores", "pairwise", "active"}``:
    ``pairwise[i][j]`` is the score of the pair (i, j) (NaN on the diagonal), ``active[i]`` the
    latents of model i above the KL threshold."""
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {CORRELATIONS}, got {correlation!r}")
    n = len(codes)
    if n < 2:
        raise ValueError("UDR compares at least two models")
    reps = [_standardised(c, k) for c, k in zip(codes, kl, strict=True)]
    masks = [np.asarray(k) > kl_threshold for k in kl]
    pairwise = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if correlation == "lasso":
                r = lasso_similarity(reps[i], reps[j], alpha, seed)
            else:
                r = spearman_similarity(reps[i], reps[j])
            pairwise[i, j] = relative_strength(r[masks[i]][:, masks[j]])
    scores = [float(np.median(np.delete(pairwise[:, i], i))) for i in range(n)]
    return {"scores": scores, "pairwise": pairwise, "active": [int(m.sum()) for m in masks]}
