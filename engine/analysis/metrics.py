"""Disentanglement metrics: BetaVAE (Higgins 2017), FactorVAE (Kim & Mnih 2018) and MIG (Chen 2018).

Each metric follows google-research/disentanglement_lib (see REFERENCE.md), so scores are
comparable with published ones: the same sample counts, the same draw order from a seeded
``np.random.RandomState`` (one fresh state per metric), only the factors with more than one value,
scikit-learn's ``LogisticRegression`` for the BetaVAE classifier and ``mutual_info_score`` for MIG.

Every metric works in two steps, so that the images are encoded once for all of them:

1. ``plan_*`` draws the factor samples and turns them into dataset indices (no images touched);
2. ``score_*`` reads representations for those indices from a :class:`Table`.

:func:`evaluate_representation` plans every requested metric, collects the union of the indices
they need, asks for a table over exactly those (on a full grid such as dSprites that is nearly the
whole grid, so it is encoded once in index order) and scores every metric from it.

Only numpy here; scikit-learn is imported inside the scoring functions (it is slow to import).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bvae_tui.datasets.errors import DataError

METRICS = ("betavae", "factorvae", "mig")
TITLES = {"betavae": "BetaVAE", "factorvae": "FactorVAE", "mig": "MIG"}

# disentanglement_lib's defaults (its metric .gin configs).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "betavae": {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000},
    "factorvae": {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000,
                  "num_variance_estimate": 10_000, "prune_threshold": 0.05},
    "mig": {"num_train": 10_000, "num_bins": 20},
}
# Quick looks (``--fast``): about a tenth of the draws. Noisier (BetaVAE/FactorVAE accuracy on
# 500 evaluation points has a standard error of up to ~2 points), and results say they are fast.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "betavae": {"batch_size": 64, "num_train": 1_000, "num_eval": 500},
    "factorvae": {"batch_size": 64, "num_train": 1_000, "num_eval": 500,
                  "num_variance_estimate": 2_000, "prune_threshold": 0.05},
    "mig": {"num_train": 3_000, "num_bins": 20},
}

# Bytes of gathered representations held at once while scoring (keeps raw pixels, 4096 floats an
# image, from needing gigabytes).
_CHUNK_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------------
# Representation tables


class Table(Protocol):
    """Representations by dataset index: ``table(idx)`` -> ``idx.shape + (dim,)`` floats."""

    dim: int

    def __call__(self, idx: np.ndarray) -> np.ndarray: ...


class CodeTable:
    """Precomputed codes for a set of dataset indices (or for every index of the dataset).

    ``codes[i]`` is the representation of dataset index ``indices[i]``; with ``indices=None``
    ``codes`` covers the whole dataset in order. Looking up an index that was not encoded is a
    programming error (the planner asked for too little) and raises ``KeyError``.
    """

    def __init__(self, codes: np.ndarray, indices: np.ndarray | None = None,
                 n: int | None = None):
        self.codes = np.asarray(codes)
        if self.codes.ndim != 2:
            raise ValueError(f"codes must be 2-D (items, dim), got shape {self.codes.shape}")
        self.dim = int(self.codes.shape[1])
        self._pos: np.ndarray | None = None
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            if len(indices) != len(self.codes):
                raise ValueError("codes and indices differ in length")
            size = int(n if n is not None else (indices.max() + 1 if len(indices) else 0))
            self._pos = np.full(size, -1, dtype=np.int64)
            self._pos[indices] = np.arange(len(indices))

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if self._pos is None:
            return self.codes[idx]
        rows = self._pos[idx]
        if (rows < 0).any():
            raise KeyError("representation table lacks some requested indices")
        return self.codes[rows]


class FunctionTable:
    """Representations computed on each lookup (raw pixels: far too large to tabulate)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], dim: int):
        self.fn = fn
        self.dim = int(dim)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        flat = self.fn(idx.reshape(-1))
        return np.asarray(flat).reshape(*idx.shape, self.dim)


def permuted(table: Table, order: Sequence[int]) -> Table:
    """``table`` with its latents reordered (for tests and comparisons)."""
    order = np.asarray(order)
    return FunctionTable(lambda idx: table(idx)[..., order], len(order))


def rescaled(table: Table, scale: Sequence[float], shift: Sequence[float] | float = 0.0) -> Table:
    """``table`` with latent j mapped to ``scale[j] * z_j + shift[j]``."""
    s = np.asarray(scale, dtype=np.float64)
    b = np.broadcast_to(np.asarray(shift, dtype=np.float64), s.shape)
    return FunctionTable(lambda idx: table(idx) * s + b, table.dim)


# ---------------------------------------------------------------------------------------------
# Ground truth: factor sampling exactly as disentanglement_lib draws it


class GroundTruth:
    """Samples factor classes of a full-grid dataset and maps them to dataset indices.

    Only factors with more than one value are "latent" (dSprites: color is dropped, leaving
    shape, scale, orientation, posX, posY). Draw order matches disentanglement_lib:
    ``sample_factors`` draws each latent factor in turn with ``randint(size, size=n)``; turning
    factors into observations draws each constant factor the same way.
    """

    def __init__(self, dataset: Any):
        sizes = tuple(int(s) for s in (getattr(dataset, "factor_sizes", None) or ()))
        if not sizes:
            name = getattr(dataset, "name", "this dataset")
            raise DataError(f"dataset '{name}' has no ground-truth factors; disentanglement "
                            "metrics need one that has them, e.g. dsprites or dsprites-mini")
        self.dataset = dataset
        self.sizes = sizes
        names = tuple(getattr(dataset, "factor_names", ()) or ())
        self.latent = [i for i, s in enumerate(sizes) if s > 1]
        self.constant = [i for i, s in enumerate(sizes) if s <= 1]
        self.names = [names[i] if i < len(names) else f"factor{i}" for i in self.latent]
        self.num_factors = len(self.latent)
        if self.num_factors == 0:
            raise DataError("dataset has no factor with more than one value; nothing to score")

    @property
    def latent_sizes(self) -> list[int]:
        return [self.sizes[i] for i in self.latent]

    def sample_factors(self, num: int, rng: np.random.RandomState) -> np.ndarray:
        """``(num, num_factors)`` classes of the latent factors, uniform per factor."""
        out = np.empty((num, self.num_factors), dtype=np.int64)
        for pos, i in enumerate(self.latent):
            out[:, pos] = rng.randint(self.sizes[i], size=num)
        return out

    def complete(self, factors: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """All factor classes ``(num, F)``: latent ones given, constant ones drawn."""
        full = np.zeros((factors.shape[0], len(self.sizes)), dtype=np.int64)
        full[:, self.latent] = factors
        for i in self.constant:
            full[:, i] = rng.randint(self.sizes[i], size=factors.shape[0])
        return full

    def indices(self, classes: np.ndarray) -> np.ndarray:
        """Dataset indices of ``(..., F)`` factor classes (one call for the whole array)."""
        flat = classes.reshape(-1, classes.shape[-1])
        return np.asarray(self.dataset.index_of(flat), dtype=np.int64).reshape(classes.shape[:-1])


# ---------------------------------------------------------------------------------------------
# Plans


@dataclass
class BetaVAEPlan:
    batch_size: int
    train_labels: np.ndarray  # (P,) factor held fixed
    train_a: np.ndarray  # (P, B) dataset indices of the first batch
    train_b: np.ndarray  # (P, B) second batch, agreeing with the first on the label factor
    eval_labels: np.ndarray
    eval_a: np.ndarray
    eval_b: np.ndarray

    def needed(self) -> list[np.ndarray]:
        return [self.train_a, self.train_b, self.eval_a, self.eval_b]


@dataclass
class FactorVAEPlan:
    prune_threshold: float
    variance_idx: np.ndarray  # (V,) indices for the global variance
    train_labels: np.ndarray  # (P,)
    train_idx: np.ndarray  # (P, B) batches with the label factor held fixed
    eval_labels: np.ndarray
    eval_idx: np.ndarray

    def needed(self) -> list[np.ndarray]:
        return [self.variance_idx, self.train_idx, self.eval_idx]


@dataclass
class MIGPlan:
    num_bins: int
    idx: np.ndarray  # (N,)
    factors: np.ndarray  # (N, K) latent factor classes

    def needed(self) -> list[np.ndarray]:
        return [self.idx]


def _beta_vae_points(gt: GroundTruth, rng: np.random.RandomState, batch_size: int,
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


def plan_beta_vae(gt: GroundTruth, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                  num_eval: int = 5_000) -> BetaVAEPlan:
    rng = np.random.RandomState(seed)
    tl, ta, tb = _beta_vae_points(gt, rng, batch_size, num_train)
    el, ea, eb = _beta_vae_points(gt, rng, batch_size, num_eval)
    return BetaVAEPlan(batch_size, tl, ta, tb, el, ea, eb)


def _factor_vae_points(gt: GroundTruth, rng: np.random.RandomState, batch_size: int,
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


def plan_factor_vae(gt: GroundTruth, seed: int = 0, batch_size: int = 64,
                    num_train: int = 10_000, num_eval: int = 5_000,
                    num_variance_estimate: int = 10_000,
                    prune_threshold: float = 0.05) -> FactorVAEPlan:
    rng = np.random.RandomState(seed)
    var_idx = gt.indices(gt.complete(gt.sample_factors(num_variance_estimate, rng), rng))
    tl, ti = _factor_vae_points(gt, rng, batch_size, num_train)
    el, ei = _factor_vae_points(gt, rng, batch_size, num_eval)
    return FactorVAEPlan(float(prune_threshold), var_idx, tl, ti, el, ei)


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


# ---------------------------------------------------------------------------------------------
# Scores


def _chunk(per_point_floats: int) -> int:
    """Points gathered at once so that their representations take about ``_CHUNK_BYTES``."""
    return max(1, _CHUNK_BYTES // max(1, 4 * per_point_floats))


def _beta_vae_features(table: Table, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``mean_batch |r(x1) - r(x2)|`` per point: ``(P, dim)`` float64."""
    out = np.empty((a.shape[0], table.dim), dtype=np.float64)
    step = _chunk(a.shape[1] * table.dim)
    for s in range(0, a.shape[0], step):
        # Keep the table's float precision for the differences (float32 for network codes and
        # pixels: half the memory traffic), and average in float64.
        ra, rb = _floats(table(a[s:s + step])), _floats(table(b[s:s + step]))
        out[s:s + step] = np.abs(ra - rb).mean(axis=1, dtype=np.float64)
    return out


def _floats(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def score_beta_vae(plan: BetaVAEPlan, table: Table, seed: int = 0) -> dict[str, Any]:
    """Accuracy of a logistic regression (scikit-learn defaults) predicting the fixed factor."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x_train = _beta_vae_features(table, plan.train_a, plan.train_b)
    x_eval = _beta_vae_features(table, plan.eval_a, plan.eval_b)
    model = LogisticRegression(random_state=seed)
    # One BLAS thread: the problem is small (features = latents), and threaded OpenBLAS spins
    # badly on a busy machine (40x slower measured on 2 shared cores).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, plan.train_labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    train_acc = float(np.mean(model.predict(x_train) == plan.train_labels))
    eval_acc = float(np.mean(model.predict(x_eval) == plan.eval_labels))
    return {"score": eval_acc, "train_accuracy": train_acc, "eval_accuracy": eval_acc,
            "converged": converged}


def _votes(table: Table, idx: np.ndarray, labels: np.ndarray, global_var: np.ndarray,
           active: np.ndarray, num_factors: int) -> np.ndarray:
    """Votes ``(num_factors, dim)``: the latent with the least normalised variance per batch."""
    votes = np.zeros((num_factors, table.dim), dtype=np.int64)
    active_ids = np.flatnonzero(active)
    step = _chunk(idx.shape[1] * table.dim)
    for s in range(0, idx.shape[0], step):
        reps = _floats(table(idx[s:s + step]))  # (p, B, dim)
        local = reps.var(axis=1, ddof=1, dtype=np.float64)
        ratio = local[:, active_ids] / global_var[active_ids]
        chosen = active_ids[np.argmin(ratio, axis=1)]
        np.add.at(votes, (labels[s:s + step], chosen), 1)
    return votes


def score_factor_vae(plan: FactorVAEPlan, table: Table, num_factors: int) -> dict[str, Any]:
    """Majority-vote classifier from latent (least variance) to fixed factor; its accuracy."""
    reps = np.asarray(table(plan.variance_idx), dtype=np.float64)
    global_var = reps.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= plan.prune_threshold
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train = _votes(table, plan.train_idx, plan.train_labels, global_var, active, num_factors)
    classifier = np.argmax(train, axis=0)  # factor each latent votes for most often
    cols = np.arange(train.shape[1])
    train_acc = float(train[classifier, cols].sum() / max(1, train.sum()))
    ev = _votes(table, plan.eval_idx, plan.eval_labels, global_var, active, num_factors)
    eval_acc = float(ev[classifier, cols].sum() / max(1, ev.sum()))
    return {"score": eval_acc, "train_accuracy": train_acc, "eval_accuracy": eval_acc,
            "num_active_dims": int(active.sum())}


def _discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Each latent (column) into ``num_bins`` equal-width bins over its own range."""
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def score_mig(plan: MIGPlan, table: Table, factor_names: Sequence[str] | None = None
              ) -> dict[str, Any]:
    """Mean over factors of (largest - second largest MI with a latent) / factor entropy."""
    from sklearn.metrics import mutual_info_score

    codes = np.asarray(table(plan.idx), dtype=np.float64)
    binned = _discretize(codes, plan.num_bins)
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
    names = list(factor_names or [f"factor{k}" for k in range(num_factors)])
    return {"score": float(np.mean(gaps)),
            "per_factor": {names[k]: float(gaps[k]) for k in range(num_factors)},
            "entropy": [float(h) for h in entropy]}


# ---------------------------------------------------------------------------------------------
# All metrics with one encoding pass


def resolve_params(metrics: Sequence[str], fast: bool = False,
                   overrides: dict[str, dict[str, Any]] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Sample-count parameters per metric: defaults (or fast ones) updated by ``overrides``."""
    base = FAST_PARAMS if fast else DEFAULT_PARAMS
    out = {m: dict(base[m]) for m in metrics}
    for m, extra in (overrides or {}).items():
        if m in out:
            unknown = set(extra) - set(out[m])
            if unknown:
                raise ValueError(f"unknown {m} parameter(s): {', '.join(sorted(unknown))}")
            out[m].update(extra)
    return out


def parse_metrics(spec: str | Sequence[str] | None) -> list[str]:
    """``"betavae,mig"`` (or a list) -> validated names in canonical order; None -> all."""
    from bvae_tui.engine.errors import ConfigError

    if spec is None:
        return list(METRICS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {s.strip().lower().replace("-", "").replace("_", "") for s in items if s.strip()}
    unknown = sorted(names - set(METRICS))
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {','.join(METRICS)}")
    return [m for m in METRICS if m in names]


def evaluate_representation(
    dataset: Any,
    make_table: Callable[[np.ndarray], Table],
    metrics: Sequence[str] = METRICS,
    params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Score ``metrics`` on the representation that ``make_table(indices)`` tabulates.

    ``make_table`` receives the sorted unique dataset indices the metrics need (the whole grid
    when nearly all of it is needed) and returns a :class:`Table` covering at least those.
    Returns ``{"scores", "details", "timings", "encoded"}``.
    """
    import time

    params = params or resolve_params(metrics)
    gt = GroundTruth(dataset)
    timings: dict[str, float] = {}
    note = progress or (lambda stage, done, total: None)

    t0 = time.perf_counter()
    plans: dict[str, Any] = {}
    for m in metrics:
        note(f"sampling {TITLES[m]} points", 0, None)
        p = params[m]
        if m == "betavae":
            plans[m] = plan_beta_vae(gt, seed, **p)
        elif m == "factorvae":
            plans[m] = plan_factor_vae(gt, seed, **p)
        else:
            plans[m] = plan_mig(gt, seed, **p)
    needed = np.unique(np.concatenate([a.reshape(-1) for p in plans.values()
                                       for a in p.needed()]))
    timings["sampling"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = make_table(needed)
    timings["encode"] = time.perf_counter() - t0

    scores: dict[str, float] = {}
    details: dict[str, dict[str, Any]] = {}
    for m in metrics:
        note(f"scoring {TITLES[m]}", 0, None)
        t0 = time.perf_counter()
        if m == "betavae":
            res = score_beta_vae(plans[m], table, seed)
        elif m == "factorvae":
            res = score_factor_vae(plans[m], table, gt.num_factors)
        else:
            res = score_mig(plans[m], table, gt.names)
        timings[m] = time.perf_counter() - t0
        scores[m] = res.pop("score")
        details[m] = res
    return {"scores": scores, "details": details, "timings": timings,
            "encoded": int(len(needed)), "factors": gt.names}
