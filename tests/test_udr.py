"""UDR (Duan et al. 2020): the similarity and score formulas against values derived from their
definitions, the group checks, and `bvae eval --udr` on a dataset without factors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.engine.analysis.metrics import udr
from bvae_tui.engine.errors import ConfigError

ALPHA = udr.DEFAULTS["alpha"]


@pytest.mark.parametrize(("matrix", "expected"), [
    (np.eye(3), 1.0),
    # rows and columns: 1/2, 1/2, 1 -> 2/3
    (np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), 2.0 / 3.0),
    (np.ones((3, 3)), 1.0 / 3.0),
    (np.zeros((3, 3)), 0.0),
    (np.zeros((0, 4)), 0.0),
    (2.5 * np.eye(4)[[2, 0, 3, 1]], 2.5),  # max^2 / sum of a scaled permutation: the scale
])
def test_relative_strength(matrix, expected):
    assert udr.relative_strength(matrix) == pytest.approx(expected, abs=1e-12)


def _codes(n=2000, d=5, seed=0):
    return np.random.RandomState(seed).randn(n, d)


def test_same_code_up_to_permutation_and_sign_scores_one_minus_alpha():
    """Standardised, nearly orthogonal latents: the Lasso's coefficient for the matching latent
    is the soft-thresholded correlation, 1 - alpha, the others 0. R = (1 - alpha) P, whose
    relative strength is (1 - alpha)^2 / (1 - alpha) = 1 - alpha."""
    a = _codes()
    b = -3.0 * a[:, [3, 0, 4, 1, 2]] + 7.0
    kl = [np.ones(5), np.ones(5)]
    res = udr.udr_scores([a, b], kl)
    assert res["scores"] == pytest.approx([1.0 - ALPHA] * 2, abs=0.01)
    assert res["active"] == [5, 5] and math.isnan(res["pairwise"][0, 0])


def test_spearman_similarity_of_the_same_code():
    """|rho| is 1 for the matching latent and, between independent latents, about
    sqrt(2 / (pi n)) on average: the strength is 1 / (1 + (d - 1) sqrt(2 / (pi n)))."""
    n, d = 2000, 5
    a = _codes(n, d)
    b = a[:, [1, 2, 3, 4, 0]] ** 3  # monotone: ranks unchanged
    res = udr.udr_scores([a, b], [np.ones(d)] * 2, correlation="spearman")
    expected = 1.0 / (1.0 + (d - 1) * math.sqrt(2.0 / (math.pi * n)))
    assert res["scores"] == pytest.approx([expected] * 2, abs=0.02)


def test_entangled_codes_score_lower():
    a = _codes()
    q, _ = np.linalg.qr(np.random.RandomState(5).randn(5, 5))
    res = udr.udr_scores([a, a @ q], [np.ones(5)] * 2)
    assert max(res["scores"]) < 0.6


def test_low_kl_latents_are_left_out():
    """Two models agree on latent 0 and carry noise elsewhere with KL 0 (collapsed). Filtered,
    the pair is the 1 x 1 matrix [1 - alpha]; unfiltered (threshold below 0), the collapsed
    latents are zeroed rows and columns that count 0: (1 - alpha) / d."""
    a, b = _codes(seed=1), _codes(seed=2)
    b[:, 0] = a[:, 0]
    kl = [np.array([1.0, 0, 0, 0, 0])] * 2
    assert udr.udr_scores([a, b], kl)["scores"] == pytest.approx([1.0 - ALPHA] * 2, abs=0.01)
    unfiltered = udr.udr_scores([a, b], kl, kl_threshold=-1.0)["scores"]
    assert unfiltered == pytest.approx([(1.0 - ALPHA) / 5] * 2, abs=0.01)


def test_a_models_score_is_the_median_over_the_others():
    a = _codes(seed=3)
    codes = [a, a[:, ::-1].copy(), _codes(seed=4)]  # two alike, one unrelated
    res = udr.udr_scores(codes, [np.ones(5)] * 3)
    pw = res["pairwise"]
    for i in range(3):
        assert res["scores"][i] == pytest.approx(np.median([pw[j, i] for j in range(3)
                                                            if j != i]))
    with pytest.raises(ValueError, match="at least two"):
        udr.udr_scores([a], [np.ones(5)])


# --------------------------------------------------------------------------------------------
# Groups of runs and the command


@pytest.fixture
def faces(tmp_path):
    """A data root with a prepared folder of 40 random RGB images (no ground-truth factors)."""
    from PIL import Image

    from bvae_tui.datasets.prepare import prepare

    src = tmp_path / "faces"
    src.mkdir()
    rng = np.random.RandomState(0)
    for i in range(40):
        Image.fromarray(rng.randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / f"{i}.png")
    root = tmp_path / "data"
    prepare(f"folder:{src}", root)
    return f"folder:{src}", root


def _run(runs_dir, dataset, data_dir, seed, name, permutation=None, unused=None, **config):
    """A run whose checkpoint holds a fixed random H model; ``permutation`` reorders its latents
    (the same representation up to the order of the latents); ``unused`` sets fields objective H
    does not use (a preset's values: given ones are refused)."""
    import dataclasses

    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    cfg = make_config(dataset=dataset, iterations=10, device="cpu", z_dim=4, seed=seed,
                      **config)
    cfg = dataclasses.replace(cfg, **(unused or {}))
    run = create_run(runs_dir, cfg, data_dir, name=name)
    _save_model(run, cfg, permutation)
    return run


def _save_model(run, cfg, permutation=None):
    """A fixed random H model in the run's last checkpoint, its latents in ``permutation``'s
    order."""
    import torch

    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    torch.manual_seed(0)
    model = build_model("H", 3, 4)
    state = model.state_dict()
    if permutation is not None:
        last = len(model.encoder) - 1
        rows = list(permutation) + [4 + p for p in permutation]
        for key in (f"encoder.{last}.weight", f"encoder.{last}.bias"):
            state[key] = state[key][rows].clone()
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": state, "iteration": 10,
                                          "arch": "H", "channels": 3, "z_dim": 4,
                                          "config": cfg.to_dict()})


def test_group_checks(runs_dir, faces):
    from bvae_tui.engine.analysis.udr_eval import check_group

    name, root = faces
    a = _run(runs_dir, name, root, 1, "a")
    with pytest.raises(ConfigError, match="at least 2 runs") as info:
        check_group([a, a])
    assert "\n" not in str(info.value)
    other_beta = _run(runs_dir, name, root, 2, "b", beta=8.0)
    with pytest.raises(ConfigError, match=r"differ in beta \(4.0 vs 8.0\), not only in their seed"):
        check_group([a, other_beta])
    same_seed = _run(runs_dir, name, root, 1, "c")
    with pytest.raises(ConfigError, match="the same seed 1"):
        check_group([a, same_seed])
    # Run options, and fields the objective does not use (gamma under H), do not count.
    fine = _run(runs_dir, name, root, 3, "d", log_every=7, preview_every=0,
                unused={"gamma": 5.0})
    assert [r.id for r in check_group([a, fine, a])] == [a.id, fine.id]


def test_udr_on_a_dataset_without_factors(runs_dir, faces):
    """Two runs holding the same network with its latents in another order: the same
    representation, so UDR is 1 - alpha for both (see the formula test); a third, different
    network scores lower. Each run's eval.json gets its score, next to earlier ones."""
    from bvae_tui.engine.analysis.udr_eval import evaluate_udr
    from bvae_tui.engine.runs.records import EvalResult

    name, root = faces
    a = _run(runs_dir, name, root, 1, "a")
    b = _run(runs_dir, name, root, 2, "b", permutation=[2, 0, 3, 1])
    a.write_eval(EvalResult.from_dict({"scores": {"mig": 0.5}, "iteration": 10, "seed": 0,
                                       "fast": False, "checkpoint": "checkpoints/last.pt",
                                       "dataset": name, "exact": True}))
    b.write_eval(EvalResult.from_dict({"scores": {"mig": 0.4}, "iteration": 10, "seed": 0,
                                       "fast": True, "checkpoint": "checkpoints/last.pt",
                                       "dataset": name}))
    res = evaluate_udr([a, b], num_points=40)
    assert min(r["active_latents"] for r in res["runs"]) >= 1
    assert [r["udr"] for r in res["runs"]] == pytest.approx([1.0 - ALPHA] * 2, abs=0.05)
    saved = json.loads(a.eval_path.read_text())
    assert saved["scores"]["udr"] == pytest.approx(res["runs"][0]["udr"])
    assert saved["scores"]["mig"] == 0.5  # same checkpoint and seed: kept
    assert saved["exact"] is True  # UDR joins factor scores however they were sampled
    saved_b = json.loads(b.eval_path.read_text())
    assert saved_b["scores"]["mig"] == 0.4 and saved_b["fast"] is True
    assert saved["details"]["udr"]["group"] == [a.id, b.id]
    assert saved["params"]["udr"]["num_points"] == 40


def _cli(args):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, args)


def test_cli_udr(runs_dir, faces):
    name, root = faces
    a = _run(runs_dir, name, root, 1, "a")
    b = _run(runs_dir, name, root, 2, "b", permutation=[1, 0, 2, 3])
    res = _cli(["eval", "--udr", "a", "b", "--udr-points", "30", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert [r["run"] for r in shown["runs"]] == [a.id, b.id]
    assert json.loads(b.eval_path.read_text())["scores"]["udr"] == shown["runs"][1]["udr"]
    res = _cli(["eval", "--udr", "a", "b", "--udr-points", "30"])
    assert res.exit_code == 0 and "UDR on" in res.stdout
    for args, message in [
        (["eval", "--udr", "a"], "at least 2 runs"),
        (["eval", "a", "b"], "add --udr"),
        (["eval", "--udr", "a", "b", "--baseline", "pca"], "drop --baseline"),
        (["eval", "--udr", "a", "b", "--correlation", "pearson"], "--correlation must be"),
        (["eval", "--udr", "a", "b", "--udr-points", "3"], "--udr-points must be"),
    ]:
        res = _cli(args)
        assert res.exit_code == 1, args
        assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output


def _sweep(runs_dir, dataset, data_dir, axes, values):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.sweeps.grid import grid
    from bvae_tui.engine.runs.sweeps.records import SchedulerStatus, SweepRecord
    from bvae_tui.engine.runs.sweeps.store import create_sweep

    members = [(swept, make_config(dataset=dataset, iterations=10, device="cpu", z_dim=4,
                                   **swept)) for swept in grid(values, axes)]
    record = SweepRecord(name="udr", axes=axes, values=values)
    return create_sweep(runs_dir, record, members, data_dir, SchedulerStatus())


def test_udr_over_a_sweeps_groups(runs_dir, faces):
    """A beta x seed sweep: beta=1's two seeds (the same network, latents reordered) form a
    group scoring 1 - alpha; beta=4 has one member with a checkpoint, so it is left out, and
    said so."""
    name, root = faces
    sweep = _sweep(runs_dir, name, root, ["beta", "seed"], {"beta": [1.0, 4.0], "seed": [1, 2]})
    runs = sweep.members()
    for run, permutation in zip(runs[:3], ([0, 1, 2, 3], [3, 1, 0, 2], None), strict=True):
        _save_model(run, run.config, permutation)
    res = _cli(["eval", "--udr", "--sweep", "udr", "--udr-points", "30", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert [g["group"] for g in shown["groups"]] == ["beta=1"]
    group = shown["groups"][0]
    assert [r["run"] for r in group["runs"]] == [runs[0].id, runs[1].id]
    assert [r["udr"] for r in group["runs"]] == pytest.approx([1.0 - ALPHA] * 2, abs=0.05)
    assert json.loads(runs[1].eval_path.read_text())["scores"]["udr"] == group["runs"][1]["udr"]
    assert not runs[2].eval_path.exists()
    left = " | ".join(shown["left_out"])
    assert "beta=4: only 1 run" in left and "no checkpoint yet" in left
    res = _cli(["eval", "--udr", "--sweep", "udr", "--udr-points", "30"])
    assert res.exit_code == 0 and "UDR of beta=1" in res.stdout and "left out" in res.stdout


def test_udr_sweep_errors(runs_dir, faces):
    name, root = faces
    sweep = _sweep(runs_dir, name, root, ["beta"], {"beta": [1.0, 4.0]})
    for run in sweep.members():
        _save_model(run, run.config)
    for args, message in [
        (["eval", "--udr", "--sweep", "udr"], "does not sweep seed"),
        (["eval", "--sweep", "udr"], "add --udr"),
        (["eval", "--udr", "--sweep", "udr", "a"], "not both"),
        (["eval", "--udr", "--sweep", "nope"], "nope"),
    ]:
        res = _cli(args)
        assert res.exit_code == 1, args
        assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output
