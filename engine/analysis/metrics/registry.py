"""Which metrics exist, their sample counts, and scoring them all from one encoding pass.

A metric is a module beside this one (``betavae.py``, ``mig.py``) with a ``plan_*`` function
(factor samples -> the dataset indices it needs, no images touched), a ``score_*`` function (plan +
representation table -> ``{"score": .., ...details}``), a ``TITLE`` and ``DEFAULTS`` / ``FAST``
sample counts; listing it in :data:`REGISTRY` makes it reachable from ``bvae eval --metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.metrics import (
    betavae,
    dci,
    explicitness,
    factorvae,
    mig,
    modularity,
    sap,
)
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.tables import Table
from bvae_tui.engine.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str  # as typed after --metrics
    title: str  # as shown in tables
    defaults: dict[str, Any]  # disentanglement_lib's sample counts (its metric .gin configs)
    fast: dict[str, Any]  # ``--fast``: about a tenth of the draws
    plan: Callable[..., Any]  # plan(gt, seed, **params) -> object with needed() -> [indices]
    score: Callable[[Any, Table, GroundTruth, int], dict[str, Any]]  # (plan, table, gt, seed)
    # Representations wider than this are not scored (the result says why): metrics that fit a
    # model per factor over every dimension would take hours on raw pixels.
    max_dim: int | None = None


# In the order results are shown.
REGISTRY: tuple[Metric, ...] = (
    Metric("betavae", betavae.TITLE, betavae.DEFAULTS, betavae.FAST, betavae.plan_beta_vae,
           betavae.score_beta_vae),
    Metric("factorvae", factorvae.TITLE, factorvae.DEFAULTS, factorvae.FAST,
           factorvae.plan_factor_vae, factorvae.score_factor_vae),
    Metric("mig", mig.TITLE, mig.DEFAULTS, mig.FAST, mig.plan_mig, mig.score_mig),
    Metric("dci", dci.TITLE, dci.DEFAULTS, dci.FAST, dci.plan_dci, dci.score_dci, dci.MAX_DIM),
    Metric("sap", sap.TITLE, sap.DEFAULTS, sap.FAST, sap.plan_sap, sap.score_sap, sap.MAX_DIM),
    Metric("modularity", modularity.TITLE, modularity.DEFAULTS, modularity.FAST,
           modularity.plan_modularity, modularity.score_modularity),
    Metric("explicitness", explicitness.TITLE, explicitness.DEFAULTS, explicitness.FAST,
           explicitness.plan_explicitness, explicitness.score_explicitness,
           explicitness.MAX_DIM),
)
# Metrics whose results carry the latent x factor MI matrix, in order of preference.
MI_SOURCES = ("mig", "modularity")
BY_NAME = {m.name: m for m in REGISTRY}
METRICS = tuple(m.name for m in REGISTRY)
TITLES = {m.name: m.title for m in REGISTRY}
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {m.name: m.defaults for m in REGISTRY}
# Fast looks are noisier (BetaVAE/FactorVAE accuracy on 500 evaluation points has a standard
# error of up to ~2 points), and results say they are fast.
FAST_PARAMS: dict[str, dict[str, Any]] = {m.name: m.fast for m in REGISTRY}
# ``--exact``: disentanglement_lib's procedure itself where the defaults take a faster road to
# the same definition: BetaVAE and FactorVAE batches drawn from the whole dataset in its draw
# order (not from a pool), DCI's trees grown by GradientBoostingClassifier (not on histograms).
EXACT_PARAMS: dict[str, dict[str, Any]] = {"betavae": {"pool": 0}, "factorvae": {"pool": 0},
                                           "dci": {"trees": "exact"}}


def resolve_params(metrics: Sequence[str], fast: bool = False,
                   overrides: dict[str, dict[str, Any]] | None = None, exact: bool = False
                   ) -> dict[str, dict[str, Any]]:
    """Parameters per metric: defaults (or fast ones), then ``EXACT_PARAMS`` where ``exact``,
    then ``overrides``."""
    base = FAST_PARAMS if fast else DEFAULT_PARAMS
    out = {m: dict(base[m]) for m in metrics}
    for m, extra in (EXACT_PARAMS if exact else {}).items():
        if m in out:
            out[m].update(extra)
    for m, extra in (overrides or {}).items():
        if m in out:
            unknown = set(extra) - set(out[m])
            if unknown:
                raise ValueError(f"unknown {m} parameter(s): {', '.join(sorted(unknown))}")
            out[m].update(extra)
    return out


def parse_metrics(spec: str | Sequence[str] | None) -> list[str]:
    """``"betavae,mig"`` (or a list) -> validated names in canonical order; None -> all."""
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

    Every metric is planned first; ``make_table`` receives the sorted unique dataset indices they
    all need (on dSprites at the default sizes about 130,000 images: BetaVAE's and FactorVAE's
    shared pool and the factor-code points; with ``pool`` 0 nearly the whole grid), encoded once
    in index order, and returns a :class:`Table` covering at least those; every metric is scored
    from it.
    Returns ``{"scores", "details", "timings", "cpu_timings", "encoded", "factors", "mi",
    "factor_entropy"}``:
    a metric skipped for the representation's width has details ``{"skipped": why}`` and no
    score; ``mi`` is the latent x factor MI matrix (nats) when MIG or modularity was scored.
    """
    params = params or resolve_params(metrics)
    gt = GroundTruth(dataset)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of the whole process (all threads) per stage
    note = progress or (lambda stage, done, total: None)

    t0, c0 = time.perf_counter(), time.process_time()
    plans: dict[str, Any] = {}
    for m in metrics:
        note(f"sampling {TITLES[m]} points", 0, None)
        plans[m] = BY_NAME[m].plan(gt, seed, **params[m])
    needed = np.unique(np.concatenate([a.reshape(-1) for p in plans.values()
                                       for a in p.needed()]))
    timings["sampling"], cpu["sampling"] = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    table = make_table(needed)
    timings["encode"], cpu["encode"] = time.perf_counter() - t0, time.process_time() - c0

    scores: dict[str, float] = {}
    details: dict[str, dict[str, Any]] = {}
    for m in metrics:
        limit = BY_NAME[m].max_dim
        if limit is not None and table.dim > limit:
            details[m] = {"skipped": f"{table.dim} dimensions (more than {limit}): "
                                     f"{TITLES[m]} would take hours"}
            continue
        note(f"scoring {TITLES[m]}", 0, None)
        t0, c0 = time.perf_counter(), time.process_time()
        res = BY_NAME[m].score(plans[m], table, gt, seed)
        timings[m], cpu[m] = time.perf_counter() - t0, time.process_time() - c0
        scores[m] = res.pop("score")
        details[m] = res
    # The MI matrix once, at the top of the result, from the first metric that computed it.
    mi = entropy = None
    for m in MI_SOURCES:
        if m in details and "mi" in details[m]:
            found, h = details[m].pop("mi"), details[m].pop("entropy", None)
            if mi is None:
                mi, entropy = found, h
    return {"scores": scores, "details": details, "timings": timings, "cpu_timings": cpu,
            "encoded": int(len(needed)), "factors": gt.names, "mi": mi,
            "factor_entropy": entropy}
