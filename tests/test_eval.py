"""evaluate_run / baselines / `bvae eval` on dsprites-mini with tiny sample counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.datasets.errors import DataError, UserError
from bvae_tui.engine.analysis import metrics as M
from tests.metric_params import tiny_metric_params

TINY = tiny_metric_params(32, 200, 100, 500, 20, dci=(100, 50))


def _make_run(runs_dir, data_dir, dataset="dsprites-mini", iteration=7, name="ev"):
    """A run with a real checkpoint of an (untrained) H model, as the trainer would save it."""
    import torch

    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    cfg = make_config(dataset=dataset, iterations=10, device="cpu", z_dim=4)
    run = create_run(runs_dir, cfg, data_dir, name=name)
    torch.manual_seed(0)
    model = build_model("H", 1, 4)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": model.state_dict(),
                                          "iteration": iteration, "arch": "H", "channels": 1,
                                          "z_dim": 4, "config": cfg.to_dict()})
    return run, model


def test_encode_table_matches_the_encoder(mini):
    import torch

    from bvae_tui.engine.analysis.encode import encode_table
    from bvae_tui.engine.train.models import build_model

    torch.manual_seed(1)
    model = build_model("H", 1, 3).eval()
    idx = np.array([3, 17, 200, 4000, 4607])
    table = encode_table(model, mini, idx, "cpu", batch_size=2)
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(mini.float_images_at(idx)))
    np.testing.assert_allclose(table(idx[::-1]), mu.numpy()[::-1], rtol=1e-5, atol=1e-6)
    # The GPU path (whole dataset as one packed tensor, unpacked per batch) gives the same codes.
    same = encode_table(model, mini, idx, "cpu", batch_size=3, device_images=True)
    np.testing.assert_allclose(same(idx), table(idx), rtol=1e-5, atol=1e-6)


def test_evaluate_run_writes_eval_json(runs_dir, mini_data_dir):
    from bvae_tui.engine.analysis.evaluate import evaluate_run

    run, _ = _make_run(runs_dir, mini_data_dir)
    first = evaluate_run(run, params=TINY, seed=3)
    saved = json.loads(run.eval_path.read_text())
    assert set(saved["scores"]) == set(M.METRICS)
    assert len(saved["mi"]) == 4 and len(saved["mi"][0]) == len(saved["factors"]) == 5
    assert all(0.0 <= v <= 1.0 for v in saved["scores"].values())
    assert saved["iteration"] == 7 and saved["fast"] is False and saved["seed"] == 3
    assert saved["params"]["mig"]["num_train"] == 500
    assert saved["checkpoint"] == "checkpoints/last.pt" and saved["seconds"] > 0
    assert saved["device"] == "cpu" and saved["z_dim"] == 4
    again = evaluate_run(run, metrics="mig", params=TINY, seed=3, write=False)
    assert again["scores"]["mig"] == first["scores"]["mig"]
    assert json.loads(run.eval_path.read_text()) == saved  # write=False left it alone
    # Re-scoring one metric of the same checkpoint keeps the others in eval.json ...
    evaluate_run(run, metrics="mig", params=TINY, seed=3)
    merged = json.loads(run.eval_path.read_text())
    assert merged["scores"] == saved["scores"] and set(merged["params"]) == set(M.METRICS)
    # ... but another seed (or checkpoint, or sample counts) replaces the file.
    evaluate_run(run, metrics="mig", params=TINY, seed=4)
    assert set(json.loads(run.eval_path.read_text())["scores"]) == {"mig"}


def test_run_without_factors_is_a_one_line_error(runs_dir, tmp_path):
    from bvae_tui.engine.analysis.evaluate import evaluate_run

    run, _ = _make_run(runs_dir, tmp_path, dataset="celeba")
    with pytest.raises(DataError, match="no ground-truth factors") as info:
        evaluate_run(run)
    assert "\n" not in str(info.value)
    assert not run.eval_path.exists()


def test_missing_checkpoint_is_a_user_error(runs_dir, mini_data_dir):
    from bvae_tui.engine.analysis.evaluate import evaluate_run

    run, _ = _make_run(runs_dir, mini_data_dir)
    run.last_checkpoint.unlink()
    with pytest.raises(UserError):
        evaluate_run(run, params=TINY)


def test_baselines(mini_data_dir):
    from bvae_tui.engine.analysis.evaluate import evaluate_baseline
    from bvae_tui.engine.errors import ConfigError

    gt = evaluate_baseline("ground-truth", "dsprites-mini", data_dir=mini_data_dir, params=TINY)
    assert gt["scores"]["betavae"] >= 0.97 and gt["scores"]["factorvae"] >= 0.97
    assert gt["scores"]["mig"] >= 0.85
    pca = evaluate_baseline("pca", "dsprites-mini", data_dir=mini_data_dir, params=TINY,
                            metrics="factorvae,mig", device="cpu")
    assert 0.0 < pca["pca_explained_variance"] < 1.0 and set(pca["scores"]) == {"factorvae",
                                                                                  "mig"}
    pix = evaluate_baseline("raw pixels", "dsprites-mini", data_dir=mini_data_dir,
                            metrics=["betavae"], params=TINY)
    assert 0.0 <= pix["scores"]["betavae"] <= 1.0
    net = evaluate_baseline("untrained", "dsprites-mini", data_dir=mini_data_dir, params=TINY,
                            device="cpu", arch="B", z_dim=5, metrics="mig")
    assert net["arch"] == "B" and net["encoded"] <= 4608
    with pytest.raises(ConfigError, match="unknown baseline"):
        evaluate_baseline("ica", "dsprites-mini", data_dir=mini_data_dir)
    with pytest.raises(DataError, match="no ground-truth factors"):
        evaluate_baseline("pca", "celeba", data_dir=mini_data_dir)


def test_pixels_table_shape(mini):
    from bvae_tui.engine.analysis.baselines import pixels_table

    table = pixels_table(mini)
    out = table(np.array([[0, 1], [2, 3]]))
    assert out.shape == (2, 2, 4096) and set(np.unique(out)) <= {0.0, 1.0}
    assert (out[1, 0] == mini.float_images_at(np.array([2])).reshape(-1)).all()


# ---------------------------------------------------------------------------------------------
# CLI


def _cli(args):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, args)


def test_cli_eval_fast_writes_eval_json(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    res = _cli(["eval", run.id, "--fast", "--metrics", "mig,factorvae", "--seed", "2",
                "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    saved = json.loads(run.eval_path.read_text())
    assert saved["fast"] is True and shown["scores"] == saved["scores"]
    assert set(saved["scores"]) == {"mig", "factorvae"}
    assert saved["params"]["mig"] == M.FAST_PARAMS["mig"] and saved["seed"] == 2


def test_cli_eval_prints_a_table(runs_dir, env_data, monkeypatch):
    from bvae_tui.engine.analysis.metrics import registry

    monkeypatch.setattr(registry, "FAST_PARAMS", TINY)  # a quick test
    run, _ = _make_run(runs_dir, env_data, name="table-run")
    res = _cli(["eval", "table-run", "--fast"])
    assert res.exit_code == 0, res.output
    assert "BetaVAE" in res.stdout and "FactorVAE" in res.stdout and "MIG" in res.stdout
    assert "FAST" in res.stdout and run.eval_path.exists()


def test_cli_eval_exact_is_recorded(runs_dir, env_data, monkeypatch):
    """--exact: disentanglement_lib's draws (no pool) and trees, said in the title and eval.json."""
    from bvae_tui.engine.analysis.metrics import registry

    monkeypatch.setattr(registry, "DEFAULT_PARAMS", TINY)  # a quick test
    run, _ = _make_run(runs_dir, env_data, name="exact-run")
    res = _cli(["eval", "exact-run", "--exact", "--metrics", "betavae,dci"])
    assert res.exit_code == 0, res.output
    assert "EXACT" in res.stdout
    saved = json.loads(run.eval_path.read_text())
    assert saved["exact"] is True and saved["params"]["betavae"]["pool"] == 0
    assert saved["details"]["dci"]["trees"] == "exact" and saved["details"]["betavae"]["pool"] == 0
    res = _cli(["eval", "--udr", "exact-run", "exact-run", "--exact"])
    assert res.exit_code == 1 and "UDR has its own (--udr-points)" in res.output


def test_cli_eval_errors_are_one_line(runs_dir, env_data, tmp_path):
    run, _ = _make_run(runs_dir, tmp_path, dataset="celeba", name="faces")
    res = _cli(["eval", run.id])
    assert res.exit_code == 1
    assert "no ground-truth factors" in res.output and len(res.output.strip().splitlines()) == 1
    res = _cli(["eval", run.id, "--metrics", "nope"])
    assert res.exit_code == 1 and "unknown metric" in res.output
    res = _cli(["eval"])
    assert res.exit_code == 1 and "--baseline" in res.output
    res = _cli(["eval", "--baseline", "ground-truth", "--dataset", "dsprites-mini", "--json",
                "--metrics", "factorvae", "--fast"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["scores"]["factorvae"] >= 0.97


def test_wide_representations_skip_the_per_dimension_metrics(mini_data_dir):
    """Raw pixels (4,096 numbers): DCI, SAP and explicitness fit a model per dimension (or over
    all of them) and would take hours; they are skipped, with the reason, and the rest scored."""
    from bvae_tui.engine.analysis.evaluate import evaluate_baseline

    pix = evaluate_baseline("pixels", "dsprites-mini", data_dir=mini_data_dir, params=TINY,
                            metrics="dci,sap,modularity,explicitness")
    assert set(pix["scores"]) == {"modularity"} and 0.0 <= pix["scores"]["modularity"] <= 1.0
    for name in ("dci", "sap", "explicitness"):
        assert "4096 dimensions" in pix["details"][name]["skipped"]
    assert len(pix["mi"]) == 4096 and len(pix["factor_entropy"]) == 5
