"""Each new objective trains on the CPU (the loss falls, its terms are logged and finite), and a
run stopped and resumed reproduces the uninterrupted one, FactorVAE's discriminator included."""

from __future__ import annotations

import math

import pytest
import torch

from bvae_tui.engine.config import make_config
from bvae_tui.engine.objective_info import OBJECTIVE_INFO
from bvae_tui.engine.runs.store import create_run
from bvae_tui.engine.train.checkpoint import load_checkpoint
from bvae_tui.engine.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {"tcvae": {"beta": 6.0}, "factor": {"gamma_tc": 10.0}, "dip-i": {"lambda_od": 2.0},
            "dip-ii": {"lambda_od": 2.0}}
ALL_TERMS = {t for info in OBJECTIVE_INFO.values() for t in info.terms}


def _run(runs_dir, data_dir, objective, name, **overrides):
    values = dict(dataset="dsprites-mini", device="cpu", z_dim=3, batch_size=8, iterations=24,
                  log_every=6, checkpoint_every=12, preview_every=0, seed=3,
                  objective=objective, **SETTINGS[objective])
    values.update(overrides)
    return create_run(runs_dir, make_config(**values), data_dir, name=name)


def _stop_after(n: int):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > n

    return should_stop


@pytest.mark.parametrize("objective", list(SETTINGS))
def test_objective_learns_and_a_stopped_run_resumes_exactly(runs_dir, mini_data_dir, objective):
    terms = OBJECTIVE_INFO[objective].terms
    full = _run(runs_dir, mini_data_dir, objective, "full")
    assert train(full) == "finished"
    rows = full.metrics()
    assert [r.iter for r in rows] == [6, 12, 18, 24]
    # Learns: the first steps of any VAE on dSprites cut the reconstruction error by hundreds
    # of nats (measured over seeds 1-3: 380 to 800), far beyond the noise of an interval.
    assert rows[-1].loss < rows[0].loss - 50 and rows[-1].recon < rows[0].recon - 50
    for row in rows:
        assert all(math.isfinite(v) for v in row.kl_per_latent) and math.isfinite(row.kl)
        assert all(math.isfinite(getattr(row, t)) for t in terms)
        assert all(getattr(row, t) is None for t in ALL_TERMS - set(terms))
    if objective == "factor":
        assert all(0.0 <= r.disc_acc <= 1.0 for r in rows)

    split = _run(runs_dir, mini_data_dir, objective, "split")
    assert train(split, should_stop=_stop_after(9)) == "stopped"
    assert load_checkpoint(split.last_checkpoint)["iteration"] == 9
    assert train(split, resume=True) == "finished"
    a = {r.iter: r.to_dict() for r in rows}
    b = {r.iter: r.to_dict() for r in split.metrics()}
    assert sorted(b) == [6, 9, 12, 18, 24]
    for it in (6, 18, 24):
        for key in ("loss", "recon", "kl", *terms):
            assert b[it][key] == pytest.approx(a[it][key], rel=1e-5, abs=1e-6), (it, key)
    ca, cb = load_checkpoint(full.last_checkpoint), load_checkpoint(split.last_checkpoint)
    for name in ca["model"]:
        torch.testing.assert_close(cb["model"][name], ca["model"][name], rtol=1e-5, atol=1e-7)
    if objective == "factor":
        da, db = ca["objective"], cb["objective"]
        for name in da["discriminator"]:
            torch.testing.assert_close(db["discriminator"][name], da["discriminator"][name],
                                       rtol=1e-5, atol=1e-7)
        steps = {float(s["step"]) for s in db["optimizer"]["state"].values()}
        assert steps == {24.0}  # its Adam carried on over the resume
    else:
        assert ca["objective"] == {}


def test_a_bad_estimate_is_warned_about_once_in_the_log(runs_dir, mini_data_dir, monkeypatch,
                                                        capsys):
    import bvae_tui.engine.runs.health as health
    from bvae_tui.engine.train.objectives.factor import FactorVAE

    real = FactorVAE.update

    def always_right(self, out, iteration):  # as if the discriminator had won outright
        return {"disc_acc": real(self, out, iteration)["disc_acc"] * 0 + 1.0}

    monkeypatch.setattr(FactorVAE, "update", always_right)
    monkeypatch.setattr(health, "HOLD_ITERS", 6)
    run = _run(runs_dir, mini_data_dir, "factor", "saturated", iterations=12, log_every=2)
    assert train(run) == "finished"
    err = capsys.readouterr().err
    assert err.count("warning: discriminator right 100% of the time for 6 iterations") == 1
    assert "(iteration 6)" in err
    assert [r.disc_acc for r in run.metrics()] == [1.0] * 6
