"""Disentanglement metrics on representation tables over procedural dsprites-mini.

Small sample counts keep this fast; the properties checked are the ones the metrics promise:
ground truth scores ~1, an unrelated random code scores at chance, permuting latents and (for
MIG and FactorVAE) rescaling them changes nothing, and the same seed gives the same scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from bvae_tui.datasets.errors import DataError
from bvae_tui.engine.analysis import metrics as M

SMALL = {
    "betavae": {"batch_size": 64, "num_train": 600, "num_eval": 300},
    "factorvae": {"batch_size": 64, "num_train": 600, "num_eval": 300,
                  "num_variance_estimate": 1000, "prune_threshold": 0.05},
    "mig": {"num_train": 2000, "num_bins": 20},
}


def _score(ds, table, seed=0, metrics=tuple(SMALL)):
    return M.evaluate_representation(ds, lambda needed: table, metrics, SMALL, seed)


def _gt_codes(ds) -> np.ndarray:
    gt = M.GroundTruth(ds)
    return np.asarray(ds.values, dtype=np.float64)[:, gt.latent]


@pytest.fixture(scope="module")
def entangled(mini) -> M.CodeTable:
    """A partly disentangled code: some clean factors, a mixed pair, noise and a dead latent."""
    rng = np.random.RandomState(3)
    v = _gt_codes(mini)
    v = (v - v.mean(0)) / v.std(0)
    n = mini.n
    codes = np.stack([
        v[:, 0] + 0.3 * rng.randn(n),             # shape, noisy
        v[:, 1] + 0.8 * rng.randn(n),             # scale, very noisy
        v[:, 3] + v[:, 4] + 0.2 * rng.randn(n),   # posX and posY mixed
        v[:, 3] - v[:, 4] + 0.2 * rng.randn(n),
        v[:, 2] + 0.5 * rng.randn(n),             # orientation
        rng.randn(n),                             # pure noise
        np.full(n, 0.7) + 1e-4 * rng.randn(n),    # collapsed latent (std < 0.05)
    ], axis=1)
    return M.CodeTable(codes)


def test_ground_truth_scores_top(mini):
    res = _score(mini, M.CodeTable(_gt_codes(mini)))
    assert res["factors"] == ["shape", "scale", "orientation", "posX", "posY"]  # color dropped
    assert res["scores"]["betavae"] >= 0.98
    assert res["scores"]["factorvae"] >= 0.98
    assert res["scores"]["mig"] >= 0.9
    assert res["details"]["factorvae"]["num_active_dims"] == 5


def test_random_code_scores_at_chance(mini):
    rng = np.random.RandomState(11)
    res = _score(mini, M.CodeTable(rng.randn(mini.n, 10)))
    # 5 factors: chance is 0.2; 300 evaluation points give a standard error of about 0.023.
    assert 0.1 < res["scores"]["betavae"] < 0.32
    assert res["scores"]["factorvae"] < 0.35
    assert res["scores"]["mig"] < 0.05


def test_entangled_code_scores_in_between(entangled, mini):
    res = _score(mini, entangled)
    assert 0.35 < res["scores"]["betavae"] < 0.99
    assert 0.3 < res["scores"]["factorvae"] < 0.99
    assert 0.02 < res["scores"]["mig"] < 0.9
    assert res["details"]["factorvae"]["num_active_dims"] == 6  # the collapsed one is pruned


def test_permuting_latents_changes_nothing(entangled, mini):
    base = _score(mini, entangled)
    order = [4, 6, 0, 5, 2, 1, 3]
    perm = _score(mini, M.permuted(entangled, order))
    assert perm["scores"]["factorvae"] == pytest.approx(base["scores"]["factorvae"], abs=1e-12)
    assert perm["scores"]["mig"] == pytest.approx(base["scores"]["mig"], abs=1e-12)
    # The logistic regression only sees its features reordered: equal up to solver tolerance.
    assert perm["scores"]["betavae"] == pytest.approx(base["scores"]["betavae"], abs=0.02)


def test_rescaling_latents_leaves_mig_and_factorvae(entangled, mini):
    base = _score(mini, entangled, metrics=["factorvae", "mig"])
    # Scales keep every active latent's std above the (absolute) 0.05 pruning threshold, as in
    # disentanglement_lib; negative scales flip a latent.
    scaled = M.rescaled(entangled, [3.7, -0.6, 25.0, 1.0, -2.2, 0.4, 5.0], shift=1.5)
    res = _score(mini, scaled, metrics=["factorvae", "mig"])
    assert res["scores"]["factorvae"] == pytest.approx(base["scores"]["factorvae"], abs=1e-12)
    assert res["scores"]["mig"] == pytest.approx(base["scores"]["mig"], abs=1e-9)


def test_same_seed_same_scores_other_seed_other_samples(entangled, mini):
    a = _score(mini, entangled, seed=5)
    b = _score(mini, entangled, seed=5)
    c = _score(mini, entangled, seed=6)
    assert a["scores"] == b["scores"] and a["details"] == b["details"]
    assert a["details"] != c["details"]


def test_draws_follow_disentanglement_lib_order(mini):
    """First BetaVAE point: randint(num_factors), then per factor randint(size, 64) twice."""
    gt = M.GroundTruth(mini)
    plan = M.plan_beta_vae(gt, seed=7, batch_size=64, num_train=3, num_eval=2)
    rng = np.random.RandomState(7)
    k = rng.randint(5)
    f1 = np.stack([rng.randint(s, size=64) for s in (3, 3, 8, 8, 8)], axis=1)
    f2 = np.stack([rng.randint(s, size=64) for s in (3, 3, 8, 8, 8)], axis=1)
    f2[:, k] = f1[:, k]
    color = np.zeros((64, 1), dtype=np.int64)
    assert plan.train_labels[0] == k
    assert (plan.train_a[0] == mini.index_of(np.hstack([color, f1]))).all()
    assert (plan.train_b[0] == mini.index_of(np.hstack([color, f2]))).all()
    # the pair agrees on the fixed factor, and only needs to
    cls_a, cls_b = mini.classes[plan.train_a[0]], mini.classes[plan.train_b[0]]
    assert (cls_a[:, 1 + k] == cls_b[:, 1 + k]).all()
    assert plan.eval_a.shape == (2, 64)


def test_factorvae_batches_hold_their_factor_fixed(mini):
    gt = M.GroundTruth(mini)
    plan = M.plan_factor_vae(gt, seed=0, batch_size=16, num_train=20, num_eval=5,
                             num_variance_estimate=50)
    for label, batch in zip(plan.train_labels, plan.train_idx, strict=True):
        col = mini.classes[batch][:, 1 + label]
        assert (col == col[0]).all()
    assert plan.variance_idx.shape == (50,)


def test_table_is_asked_only_for_needed_indices(entangled, mini):
    seen = {}

    def make(needed):
        seen["needed"] = needed
        return M.CodeTable(entangled(needed), needed, n=mini.n)

    sub = M.evaluate_representation(mini, make, ["mig"], {"mig": {"num_train": 300,
                                                                    "num_bins": 20}})
    full = M.evaluate_representation(mini, lambda needed: entangled, ["mig"],
                                     {"mig": {"num_train": 300, "num_bins": 20}})
    needed = seen["needed"]
    assert (np.diff(needed) > 0).all() and len(needed) < mini.n == 4608
    assert sub["encoded"] == len(needed)
    assert sub["scores"] == full["scores"]


def test_code_table_lookup():
    table = M.CodeTable(np.arange(6.0).reshape(3, 2), indices=np.array([5, 1, 9]), n=10)
    assert table(np.array([[9, 5]])).tolist() == [[[4.0, 5.0], [0.0, 1.0]]]
    with pytest.raises(KeyError):
        table(np.array([2]))


def test_dataset_without_factors_is_a_one_line_error():
    class NoFactors:
        name = "celeba"
        factor_sizes = ()

    with pytest.raises(DataError, match="no ground-truth factors") as info:
        M.GroundTruth(NoFactors())
    assert "\n" not in str(info.value)


def test_parse_metrics():
    from bvae_tui.engine.errors import ConfigError

    assert M.parse_metrics("mig, BetaVAE") == ["betavae", "mig"]
    assert M.parse_metrics("Explicitness,dci,SAP,modularity") == [
        "dci", "sap", "modularity", "explicitness"]
    assert M.parse_metrics(None) == list(M.METRICS)
    with pytest.raises(ConfigError, match="unknown metric"):
        M.parse_metrics("betavae,dcx")
    fast = M.resolve_params(["mig"], fast=True)
    assert fast["mig"]["num_train"] < M.DEFAULT_PARAMS["mig"]["num_train"]
