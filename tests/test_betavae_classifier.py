"""BetaVAE's classifier converges (no "classifier did not converge" under its score) and scores
what the old call scored: scikit-learn's default LogisticRegression on the raw features.

The comparison is made on fixed inputs (a synthetic code of a factor grid, and a model trained
briefly here), on the same features: only the classifier differs between the two paths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from bvae_tui.engine.analysis import metrics as M
from bvae_tui.engine.analysis.metrics import betavae
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from tests.metric_helpers import Grid


def _old_score(plan: betavae.BetaVAEPlan, table: M.Table) -> tuple[float, bool]:
    """The previous path: scikit-learn defaults on the raw features (accuracy, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x_train = betavae._features(table, plan.train_a, plan.train_b)
    x_eval = betavae._features(table, plan.eval_a, plan.eval_b)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression(random_state=0).fit(x_train, plan.train_labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return float(np.mean(model.predict(x_eval) == plan.eval_labels)), converged


def _scaled_code(grid: Grid) -> M.CodeTable:
    """Each factor in one latent, at very different scales and offsets, plus a noise latent and
    a shared mixing: features the default lbfgs cannot fit in its 100 iterations."""
    rng = np.random.RandomState(0)
    v = grid.values / np.maximum(grid.values.max(axis=0), 1)
    code = np.concatenate([v * np.array([40.0, 0.05, 7.0, 0.4]) + np.array([100, -3, 20, 5]),
                           rng.randn(grid.n, 1) * 2.0], axis=1)
    code[:, 1] += 0.3 * code[:, 2] / 7.0
    return M.CodeTable(code)


def test_the_classifier_converges_and_scores_as_before_on_a_fixed_code():
    grid = Grid((3, 6, 8, 8))
    gt = GroundTruth(grid)
    table = _scaled_code(grid)
    plan = betavae.plan_beta_vae(gt, seed=0, batch_size=16, num_train=3000, num_eval=2000)
    old, old_converged = _old_score(plan, table)
    assert not old_converged  # the input shows the old warning...
    new = betavae.score_beta_vae(plan, table, gt, seed=0)
    assert new["converged"] is True  # ...and the new path converges on it
    assert new["score"] == pytest.approx(old, abs=0.01)
    assert new["classifier"] == "logistic regression on standardised features"


def test_a_constant_latent_does_not_break_standardising():
    train = np.array([[1.0, 2.0], [3.0, 2.0]])
    z_train, z_eval = betavae.standardise(train, np.array([[2.0, 2.0]]))
    assert np.isfinite(z_train).all() and z_eval.tolist() == [[0.0, 0.0]]


@pytest.fixture(scope="module")
def trained(mini_data_dir, tmp_path_factory):
    from bvae_tui.engine.train.trainer import train
    from tests.test_trainer import _run

    root = tmp_path_factory.mktemp("runs")
    run = _run(root, mini_data_dir, name="bv", z_dim=6, batch_size=32, iterations=60,
               log_every=30, checkpoint_every=60)
    assert train(run) == "finished"
    return run


def test_on_a_trained_model_no_warning_and_the_same_score(trained, mini_data_dir):
    from bvae_tui.datasets.prepare import open_dataset
    from bvae_tui.engine.analysis.encode import model_table_maker
    from bvae_tui.engine.train.checkpoint import checkpoint_path, load_model

    model, cfg, _ = load_model(trained, checkpoint_path(trained, None), "cpu")
    dataset = open_dataset(cfg.dataset, mini_data_dir)
    gt = GroundTruth(dataset)
    plan = betavae.plan_beta_vae(gt, seed=0, **{**betavae.DEFAULTS, "pool": 0})
    needed = np.unique(np.concatenate([a.reshape(-1) for a in plan.needed()]))
    table = model_table_maker(model, dataset, "cpu")(needed)
    new = betavae.score_beta_vae(plan, table, gt, seed=0)
    old, _ = _old_score(plan, table)
    assert new["converged"] is True
    # Not a margin read off one machine's trajectory (the model differs by CPU): two sound
    # classifiers on the same 5,000 evaluation points agree to within a few standard errors of
    # an accuracy there, sqrt(0.25 / 5000) = 0.007 at worst; 3 * sqrt(2) of those is 0.03.
    assert new["score"] == pytest.approx(old, abs=0.03)


def test_bvae_eval_prints_no_convergence_note(trained, monkeypatch, mini_data_dir):
    from bvae_tui.cli.main import app

    monkeypatch.setenv("BVAE_DATA_DIR", str(mini_data_dir))
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["eval", str(trained.path), "--runs-dir",
                                   str(trained.path.parent), "--metrics", "betavae", "--fast"])
    assert res.exit_code == 0, res.output
    assert "BetaVAE" in res.output and "converge" not in res.output
