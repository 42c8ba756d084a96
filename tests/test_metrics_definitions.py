"""DCI, SAP, modularity and explicitness against values derived from their definitions.

Four representations of a full factor grid (sizes 2, 3, 4, 5: one binary factor, the others
multi-class, like dSprites): the ground-truth factors themselves (the ideal code), a random
rotation of them (every latent mixes every factor), noise (says nothing about the image) and the
ideal code with factor 0 duplicated. The importance-matrix and MI-matrix formulas are checked on
the matrices disentanglement_lib's own tests use, with the values its tests expect.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bvae_tui.engine.analysis import metrics as M
from bvae_tui.engine.analysis.metrics import dci, information, modularity, sap
from tests.metric_helpers import Grid, noise_table, rotation, score, standardised

SIZES = (2, 3, 4, 5)
PARAMS = {
    "dci": {"num_train": 300, "num_test": 200},
    "sap": {"num_train": 1000, "num_test": 500},
    "modularity": {"num_train": 1000, "num_bins": 20},
    "explicitness": {"num_train": 1000, "num_test": 500},
}


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid(SIZES)


def _tables(grid: Grid) -> dict[str, M.Table]:
    return {
        "ideal": M.CodeTable(grid.values),
        "rotated": M.CodeTable(standardised(grid) @ rotation(len(SIZES))),
        "noise": noise_table(len(SIZES)),
        "duplicate": M.CodeTable(np.hstack([grid.values, grid.values[:, :1]])),
    }


@pytest.fixture(scope="module")
def results(grid) -> dict[str, dict]:
    """Every metric on the four representations (scored once for the module)."""
    return {name: score(grid, table, PARAMS) for name, table in _tables(grid).items()}


@pytest.fixture(scope="module")
def exact_dci(grid) -> dict[str, dict]:
    """DCI alone on the same four representations with disentanglement_lib's own trees."""
    params = {"dci": {**PARAMS["dci"], "trees": "exact"}}
    return {name: score(grid, table, params) for name, table in _tables(grid).items()}


@pytest.fixture(params=["hist", "exact"])
def dci_results(request, results, exact_dci) -> dict[str, dict]:
    """Each DCI test runs on both ways of growing the trees."""
    return results if request.param == "hist" else exact_dci


# --------------------------------------------------------------------------------------------
# The formulas, on disentanglement_lib's test matrices

DIAGONAL = np.diag(5.0 * np.ones(5))


@pytest.mark.parametrize(("matrix", "d", "c"), [
    (DIAGONAL, 1.0, 1.0),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),  # an unused latent
    (np.zeros((10, 10)), 0.0, 0.0),
    (np.vstack([DIAGONAL, DIAGONAL]), 1.0, 1.0 - math.log(2) / math.log(10)),  # redundant
    (DIAGONAL[:2], 1.0, 1.0),  # factors nobody captures
    (np.hstack([DIAGONAL, DIAGONAL]), 1.0 - math.log(2) / math.log(10), 1.0),  # one code, 2 f.
])
def test_dci_formulas(matrix, d, c):
    assert dci.disentanglement(matrix) == pytest.approx(d, abs=1e-7)
    assert dci.completeness(matrix) == pytest.approx(c, abs=1e-7)


@pytest.mark.parametrize(("matrix", "expected"), [
    (DIAGONAL, 1.0),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),  # an unused latent counts 0
    (np.zeros((10, 10)), 0.0),
    (np.vstack([DIAGONAL, DIAGONAL]), 1.0),
    (DIAGONAL[:2], 1.0),
    # each latent shares equally with 2 of 10 factors: 1 - 1/(10 - 1)
    (np.hstack([DIAGONAL, DIAGONAL]), 1.0 - 1.0 / 9.0),
])
def test_modularity_formula(matrix, expected):
    assert modularity.modularity(matrix) == pytest.approx(expected, abs=1e-12)


def test_sap_gap_formula():
    acc = np.array([[0.9, 0.2], [0.6, 0.2], [0.1, 0.7]])
    assert sap.top_two_gap(acc) == pytest.approx([0.3, 0.5])
    assert sap.top_two_gap(acc[:1]).tolist() == [0.0, 0.0]


def test_mi_matrix_equals_scikit_learn():
    from sklearn.metrics import mutual_info_score

    rng = np.random.RandomState(0)
    factors = np.stack([rng.randint(s, size=2000) for s in (3, 6, 40)], axis=1)
    codes = np.concatenate([factors + rng.randn(2000, 3), rng.randn(2000, 2),
                            np.zeros((2000, 1))], axis=1)  # informative, noise, constant
    binned = information.discretize(codes, 20)
    ours = information.mutual_info_matrix(binned, factors)
    theirs = np.array([[mutual_info_score(factors[:, k], binned[:, j]) for k in range(3)]
                       for j in range(6)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    entropy = [mutual_info_score(factors[:, k], factors[:, k]) for k in range(3)]
    np.testing.assert_allclose(information.entropy(factors), entropy, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# DCI


def test_dci_ideal_code(dci_results):
    d = dci_results["ideal"]["details"]["dci"]
    assert d["disentanglement"] > 0.98 and d["completeness"] > 0.98
    assert d["informativeness_test"] == 1.0  # trees separate exact factor values


def test_dci_duplicated_factor(dci_results):
    """Factor 0's importance splits between two identical latents (ties go either way), so its
    completeness is 1 - H(1/2, 1/2) / log D; factors weigh equally (each classifier's
    importances sum to 1): C = 1 - log 2 / (K log D), with K = 4 factors and D = 5 latents."""
    d = dci_results["duplicate"]["details"]["dci"]
    expected = 1.0 - math.log(2) / (len(SIZES) * math.log(len(SIZES) + 1))
    assert d["completeness"] == pytest.approx(expected, abs=0.01)
    assert d["disentanglement"] > 0.98  # each latent still serves one factor


def test_dci_rotated_and_noise_codes(dci_results):
    rotated = dci_results["rotated"]["details"]["dci"]
    assert rotated["disentanglement"] < 0.2 and rotated["completeness"] < 0.2
    assert rotated["informativeness_test"] > 0.9  # the information is all there, mixed
    noise = dci_results["noise"]["details"]["dci"]
    assert noise["disentanglement"] < 0.1 and noise["completeness"] < 0.1
    # A classifier of noise is right by chance: 1 / classes on average over the factors.
    chance = float(np.mean([1.0 / s for s in SIZES]))
    assert noise["informativeness_test"] == pytest.approx(chance, abs=0.06)


def test_histogram_trees_agree_with_exact_trees(results, exact_dci):
    for name in ("ideal", "rotated", "noise", "duplicate"):
        hist, exact = results[name]["details"]["dci"], exact_dci[name]["details"]["dci"]
        assert hist["trees"] == "hist" and exact["trees"] == "exact"
        for key in ("disentanglement", "completeness", "informativeness_test"):
            assert hist[key] == pytest.approx(exact[key], abs=0.06), (name, key)


def test_split_gains_read_the_installed_scikit_learn():
    """The histogram trees' importances come from scikit-learn's private tree nodes: a feature
    that decides the class takes nearly all the gain, and a change in that layout fails here."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.RandomState(0)
    x = rng.randn(600, 4)
    y = (x[:, 2] > 0.3).astype(int) + (x[:, 2] > 1.0)
    model = HistGradientBoostingClassifier(max_iter=10, max_depth=3).fit(x, y)
    gains = dci.split_gains(model, 4)
    assert gains.shape == (4,) and (gains >= 0).all()
    assert gains[2] / gains.sum() > 0.9


def test_unknown_trees_is_a_one_line_error(grid):
    from bvae_tui.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="DCI trees 'forest' unknown; choose from hist, exact"):
        dci.plan_dci(M.GroundTruth(grid), trees="forest")


# --------------------------------------------------------------------------------------------
# SAP


def test_sap_ideal_code(results):
    acc = np.array(results["ideal"]["details"]["sap"]["accuracy"])
    assert (acc.argmax(axis=0) == np.arange(len(SIZES))).all()  # each factor: its own latent
    assert acc[0, 0] == 1.0  # a binary factor on its own line: one threshold separates it
    for k, size in enumerate(SIZES):  # unrelated latents predict at chance, 1 / classes
        others = np.delete(acc[:, k], k)
        assert np.all(np.abs(others - 1.0 / size) < 0.12)
    assert results["ideal"]["scores"]["sap"] > 0.3


def test_sap_duplicate_zeroes_its_factor_only(results):
    """Two identical latents predict factor 0 equally well, so its gap is 0; for the others the
    copy adds a latent exactly as (un)predictive as latent 0, so their gaps do not change:
    SAP(duplicate) = SAP(ideal) - gap_0 / K."""
    ideal, dup = results["ideal"], results["duplicate"]
    gaps = list(ideal["details"]["sap"]["per_factor"].values())
    dup_gaps = list(dup["details"]["sap"]["per_factor"].values())
    assert dup_gaps[0] == 0.0 and dup_gaps[1:] == gaps[1:]
    assert dup["scores"]["sap"] == pytest.approx(ideal["scores"]["sap"] - gaps[0] / len(SIZES),
                                                 abs=1e-12)


def test_sap_rotated_and_noise_codes(results):
    assert results["rotated"]["scores"]["sap"] < 0.15
    assert results["noise"]["scores"]["sap"] < 0.06


# --------------------------------------------------------------------------------------------
# Modularity


def test_modularity_ideal_and_duplicate(results):
    assert results["ideal"]["scores"]["modularity"] > 0.98
    # A duplicated latent is as modular as the one it copies.
    assert results["duplicate"]["scores"]["modularity"] > 0.98
    assert results["rotated"]["scores"]["modularity"] < results["ideal"]["scores"][
        "modularity"] - 0.15


def test_modularity_of_noise_follows_the_mi_estimators_bias():
    """For a latent independent of the factors, 2N * MI(latent; factor k) is asymptotically
    chi-square with (bins - 1)(classes_k - 1) degrees of freedom: the plug-in estimate is pure
    bias, larger for factors with more classes. The expected modularity follows from the
    definition applied to such draws (Monte Carlo); the metric on noise lands on it."""
    grid = Grid(SIZES)
    n, bins = PARAMS["modularity"]["num_train"], PARAMS["modularity"]["num_bins"]
    rng = np.random.RandomState(1)
    draws = np.stack([rng.chisquare((bins - 1) * (s - 1), size=20_000) for s in SIZES],
                     axis=1) / (2 * n)
    expected = float(np.mean(modularity.modularity_per_latent(draws)))
    got = [score(grid, noise_table(8, seed), PARAMS, ["modularity"])["scores"]["modularity"]
           for seed in range(3)]
    assert float(np.mean(got)) == pytest.approx(expected, abs=0.05)


# --------------------------------------------------------------------------------------------
# Explicitness


def test_explicitness(results):
    ideal = results["ideal"]["scores"]["explicitness"]
    assert ideal > 0.95
    # An invertible linear map of the code leaves what a linear classifier can read.
    assert results["rotated"]["scores"]["explicitness"] == pytest.approx(ideal, abs=0.02)
    assert results["duplicate"]["scores"]["explicitness"] == pytest.approx(ideal, abs=0.01)
    # Noise: a classifier's scores are independent of the class, so its ROC-AUC is 1/2.
    assert results["noise"]["scores"]["explicitness"] == pytest.approx(0.5, abs=0.04)


def test_explicitness_ignores_scale_and_sign(grid, results):
    """Latents are standardised first: rescaling one, even flipping it, changes nothing."""
    scaled = M.rescaled(M.CodeTable(grid.values), [3.0, -0.5, 10.0, -2.0], shift=4.0)
    res = score(grid, scaled, PARAMS, ["explicitness"])
    assert res["scores"]["explicitness"] == pytest.approx(
        results["ideal"]["scores"]["explicitness"], abs=1e-6)
