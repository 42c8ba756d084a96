"""BetaVAE and FactorVAE drawn from a pool of images (the default on large datasets).

The pool keeps each batch's definition (BetaVAE: pairs that share the label factor's class;
FactorVAE: a batch that holds its label factor at one class) while every image comes from one
uniform sample, so that encoding is bounded by the pool's size. Checked on dsprites-mini
(4,608 images) with pools smaller than it.
"""

from __future__ import annotations

import numpy as np
import pytest

from bvae_tui.engine.analysis import metrics as M


@pytest.fixture(scope="module")
def gt(mini) -> M.GroundTruth:
    return M.GroundTruth(mini)


def _latent_classes(mini, gt, idx: np.ndarray) -> np.ndarray:
    return mini.classes[idx][..., gt.latent]


def test_pool_members_are_distinct_and_carry_their_factors(mini, gt):
    pool = gt.pool(1500, seed=3)
    assert len(pool) == len(np.unique(pool.indices)) and 1000 < len(pool) <= 1500
    assert (_latent_classes(mini, gt, pool.indices) == pool.factors).all()
    assert gt.pool(1500, seed=3) is pool  # BetaVAE and FactorVAE share it
    assert not np.array_equal(gt.pool(1500, seed=4).indices, pool.indices)
    rng = np.random.RandomState(0)
    wanted = pool.factors[pool.random((200,), rng), 2]
    got = pool.matching(2, wanted, rng)
    assert (pool.factors[got, 2] == wanted).all()


def test_no_pool_where_it_would_not_save_encoding(mini, gt):
    assert gt.pool(0, seed=0) is None
    assert gt.pool(mini.n, seed=0) is None  # no smaller than the dataset: encode it whole


def test_pooled_betavae_pairs_share_their_label_factor(mini, gt):
    plan = M.plan_beta_vae(gt, seed=1, batch_size=16, num_train=300, num_eval=100, pool=800)
    rows = np.arange(len(plan.train_labels))
    a = _latent_classes(mini, gt, plan.train_a)
    b = _latent_classes(mini, gt, plan.train_b)
    assert (a[rows, :, plan.train_labels] == b[rows, :, plan.train_labels]).all()
    # the other factors are free: pairs differ in them
    assert (a[rows, :, (plan.train_labels + 1) % gt.num_factors]
            != b[rows, :, (plan.train_labels + 1) % gt.num_factors]).any()
    members = gt.pool(800, seed=1).indices
    assert np.isin(np.concatenate([x.reshape(-1) for x in plan.needed()]), members).all()
    assert plan.pool == len(members)
    assert set(np.unique(plan.train_labels)) == set(range(gt.num_factors))


def test_pooled_factorvae_batches_hold_their_factor(mini, gt):
    plan = M.plan_factor_vae(gt, seed=1, batch_size=16, num_train=300, num_eval=100,
                             num_variance_estimate=400, pool=800)
    classes = _latent_classes(mini, gt, plan.train_idx)
    held = classes[np.arange(len(plan.train_labels)), :, plan.train_labels]
    assert (held == held[:, :1]).all()
    members = gt.pool(800, seed=1).indices
    assert np.isin(np.concatenate([x.reshape(-1) for x in plan.needed()]), members).all()
    # both metrics on one seed draw from the same pool: encoding is bounded by its size
    beta = M.plan_beta_vae(gt, seed=1, batch_size=16, num_train=300, num_eval=100, pool=800)
    needed = np.unique(np.concatenate([x.reshape(-1) for p in (plan, beta)
                                       for x in p.needed()]))
    assert len(needed) <= len(members)


def test_pooled_scores_keep_the_metrics_meaning(mini, gt):
    """Ground truth still scores top and noise at chance when the batches come from a pool."""
    params = {"betavae": {"batch_size": 64, "num_train": 600, "num_eval": 300, "pool": 1000},
              "factorvae": {"batch_size": 64, "num_train": 600, "num_eval": 300,
                            "num_variance_estimate": 1000, "prune_threshold": 0.05,
                            "pool": 1000}}
    truth = np.asarray(mini.values, dtype=np.float64)[:, gt.latent]
    ideal = M.evaluate_representation(mini, lambda needed: M.CodeTable(truth),
                                      list(params), params, seed=0)
    assert ideal["scores"]["betavae"] >= 0.98 and ideal["scores"]["factorvae"] >= 0.98
    assert ideal["details"]["betavae"]["pool"] == ideal["details"]["factorvae"]["pool"] > 0
    assert ideal["encoded"] <= 1000
    noise = M.CodeTable(np.random.RandomState(11).randn(mini.n, 10))
    chance = M.evaluate_representation(mini, lambda needed: noise, list(params), params, seed=0)
    # 5 factors: chance is 0.2; 300 evaluation points give a standard error of about 0.023.
    assert 0.1 < chance["scores"]["betavae"] < 0.32
    assert chance["scores"]["factorvae"] < 0.35


def test_exact_params_restore_disentanglement_libs_draws():
    exact = M.resolve_params(["betavae", "factorvae", "dci", "mig"], exact=True)
    default = M.resolve_params(["betavae", "factorvae", "dci", "mig"])
    assert exact["betavae"]["pool"] == exact["factorvae"]["pool"] == 0
    assert exact["dci"]["trees"] == "exact" and default["dci"]["trees"] == "hist"
    assert default["betavae"]["pool"] > 0 and exact["mig"] == default["mig"]
    # an explicit override still wins over --exact
    mixed = M.resolve_params(["betavae"], overrides={"betavae": {"pool": 500}}, exact=True)
    assert mixed["betavae"]["pool"] == 500
