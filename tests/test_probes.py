"""Probe metrics during training (issue 21): probes.jsonl at the interval, from the recorded
sample, equal to `bvae eval`'s MIG matrix on the same points and checkpoint; resumes without
duplicates; a failing probe does not stop training; bad options are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bvae_tui.engine.analysis.evaluate import evaluate_run
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.mig import plan_mig
from bvae_tui.engine.config import PROBE_EVERY, make_config
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.records import ProbeRow
from bvae_tui.engine.train import probes
from bvae_tui.engine.train.checkpoint import load_checkpoint
from bvae_tui.engine.train.trainer import train
from tests.test_train_cli import assert_one_line_error, invoke
from tests.test_trainer import _run
from tests.test_worker import TINY, bvae, wait_for

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def few_points(monkeypatch):
    """In-process probes of 512 points (32 of MIG's draws of 16): the same code, faster."""
    monkeypatch.setattr(probes, "PROBE_POINTS", 512)


def test_default_interval_only_where_the_dataset_has_factors():
    assert make_config(dataset="dsprites-mini").probe_interval == PROBE_EVERY
    assert make_config(dataset="dsprites", log_every=5000).probe_interval == 5000
    assert make_config(dataset="celeba").probe_interval == 0
    assert make_config(dataset="dsprites", probe_every=0).probe_interval == 0
    assert make_config(dataset="dsprites", probe_every=300).probe_interval == 300


@pytest.mark.parametrize("values, fragment", [
    (dict(dataset="celeba", probe_every=100), "dsprites, dsprites-mini, shapes3d"),
    (dict(dataset="dsprites", log_every=100, probe_every=50),
     "--probe-every must be at least --log-every (100); got 50"),
    (dict(dataset="dsprites", probe_every=-1), "--probe-every must be at least 0"),
])
def test_bad_probe_intervals_are_config_errors(values, fragment):
    with pytest.raises(ConfigError, match="--probe-every") as caught:
        make_config(**values)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("args, fragment", [
    (["--dataset", "celeba", "--probe-every", "100"],
     "--probe-every needs a dataset with ground-truth factors (dsprites, dsprites-mini"),
    (["--log-every", "100", "--probe-every", "10"], "must be at least --log-every (100)"),
])
def test_cli_refuses_bad_probe_options_in_one_line(runs_dir, env_data, args, fragment):
    result = invoke("train", "--dataset", "dsprites-mini", *args)
    assert_one_line_error(result, fragment)
    assert list(runs_dir.iterdir()) == []


def test_probes_come_at_the_interval_from_the_recorded_sample(runs_dir, mini_data_dir, mini,
                                                              few_points):
    run = _run(runs_dir, mini_data_dir, iterations=50, probe_every=20)
    assert train(run) == "finished"
    rows = run.probes()
    assert [r.iter for r in rows] == [20, 40]  # on multiples only: none for the end at 50
    plan = plan_mig(GroundTruth(mini), seed=rows[0].sample_seed,
                    num_train=rows[0].sample_size, num_bins=rows[0].num_bins)
    for row in rows:
        assert (row.sample_seed, row.sample_size, row.num_bins) == (0, 512, 20)
        assert row.sample_sha1 == probes.sample_digest(plan.idx)
        assert row.factors == ["shape", "scale", "orientation", "posX", "posY"]
        shares = np.asarray(row.mi)
        assert shares.shape == (3, 5) and ((shares >= 0) & (shares <= 1 + 1e-9)).all()
        assert row.best_latent == [int(j) for j in shares.argmax(axis=0)]
        assert row.mig == pytest.approx(float(np.mean(row.gaps)))
    written = [json.loads(line) for line in run.probes_path.read_text().splitlines()]
    assert set(written[0]) == set(ProbeRow().to_dict())


def test_probe_matrix_equals_evals_on_the_same_points_and_checkpoint(runs_dir, mini_data_dir,
                                                                    few_points):
    run = _run(runs_dir, mini_data_dir, iterations=40, probe_every=20)
    assert train(run) == "finished"
    last = run.probes()[-1]
    assert last.iter == load_checkpoint(run.last_checkpoint)["iteration"] == 40
    result = evaluate_run(run, metrics="mig", seed=last.sample_seed, write=False,
                          params={"mig": {"num_train": last.sample_size,
                                          "num_bins": last.num_bins}})
    nats, h = np.asarray(result["mi"]), np.asarray(result["factor_entropy"])
    np.testing.assert_allclose(np.asarray(last.mi), nats / h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last.factor_entropy, h, rtol=1e-12)
    assert last.mig == pytest.approx(result["scores"]["mig"], abs=1e-12)
    assert last.factors == result["factors"]


def test_probes_leave_the_training_untouched(runs_dir, mini_data_dir, few_points):
    probed = _run(runs_dir, mini_data_dir, name="probed", probe_every=10)
    plain = _run(runs_dir, mini_data_dir, name="plain", probe_every=0)
    assert train(probed) == train(plain) == "finished"
    assert [r.loss for r in probed.metrics()] == [r.loss for r in plain.metrics()]
    assert len(probed.probes()) == 3 and plain.probes() == []


def test_a_resume_drops_probe_rows_past_its_checkpoint(runs_dir, mini_data_dir, few_points):
    run = _run(runs_dir, mini_data_dir, iterations=80, checkpoint_every=40, probe_every=20,
               checkpoint_minutes=0.0)

    def interrupt_after_60() -> bool:  # Ctrl-C mid-interval: no checkpoint after 40
        if run.probes() and run.probes()[-1].iter == 60:
            raise KeyboardInterrupt
        return False

    assert train(run, should_stop=interrupt_after_60) == "stopped"
    assert [r.iter for r in run.probes()] == [20, 40, 60]
    assert load_checkpoint(run.last_checkpoint)["iteration"] == 40
    assert train(run, resume=True) == "finished"
    assert [r.iter for r in run.probes()] == [20, 40, 60, 80]


def test_a_failing_probe_is_logged_once_and_training_goes_on(runs_dir, mini_data_dir,
                                                             monkeypatch, capsys):
    def broken(self, model, iteration):
        raise ValueError("no sample today")

    monkeypatch.setattr(probes.Prober, "probe", broken)
    run = _run(runs_dir, mini_data_dir, iterations=40, probe_every=10)
    assert train(run) == "finished"
    err = capsys.readouterr().err
    assert err.count("probe failed") == 1, err
    assert "probe failed at iteration 10" in err and "no sample today" in err
    assert run.probes() == [] and [r.iter for r in run.metrics()] == [10, 20, 30, 40]


def test_a_torn_last_probe_line_is_ignored(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir)
    whole = [ProbeRow(iter=i, mig=0.1 * i).to_line() for i in (10, 20)]
    run.probes_path.write_text("".join(whole) + '{"iter": 30, "mig": 0.')
    assert [r.iter for r in run.probes()] == [10, 20]
    run.truncate_probes(10)
    assert [r.iter for r in run.probes()] == [10]


def test_worker_stopped_and_resumed_continues_its_probes_without_duplicates(env, runs_dir):
    out = bvae(env, "train", *TINY, "--iterations", "100", "--log-every", "10",
               "--probe-every", "20", "--checkpoint-every", "1000", "--detach")
    assert out.returncode == 0, out.stderr
    from bvae_tui.engine.runs.store import Run

    run = Run(runs_dir / out.stdout.strip())
    wait_for(lambda: run.probes_path.exists() and run.probes(), what="the first probe")
    out = bvae(env, "stop", run.id)
    assert out.returncode == 0, out.stderr
    stopped_at = run.status().iteration
    assert run.status().state == "stopped" and stopped_at < 100, run.status()
    out = bvae(env, "resume", run.id)  # in the foreground
    assert out.returncode == 0, out.stderr
    assert run.status().state == "finished"
    assert [r.iter for r in run.probes()] == [20, 40, 60, 80, 100]
    assert "probe failed" not in run.log_path.read_text()


def _probe(iteration: int, shares: list[list[float]]) -> ProbeRow:
    return ProbeRow(iter=iteration, factors=["shape", "scale", "posX"], mi=shares)


def test_emergence_is_the_first_probe_above_half_per_factor():
    from bvae_tui.engine.analysis.emergence import Emergence, emergence

    rows = [
        _probe(300, [[0.9, 0.1, 0.0], [0.0, 0.7, 0.1]]),
        _probe(100, [[0.1, 0.0, 0.0], [0.0, 0.2, 0.6]]),
        ProbeRow(iter=150, factors=["shape", "scale", "posX"], mi=[[0.9, 0.9]]),  # damaged
        _probe(200, [[0.2, 0.0, 0.5], [0.0, 0.55, 0.4]]),  # exactly 0.5 is not "more than half"
    ]
    assert emergence(rows) == [Emergence("shape", 300, 0, 0.9),
                               Emergence("scale", 200, 1, 0.55),
                               Emergence("posX", 100, 1, 0.6)]
    assert emergence(rows[1:2])[0] == Emergence("shape", None, None, None)


def test_runs_show_emergence_text_json_and_without_probes(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir)
    result = invoke("runs", "show", run.id, "--emergence")
    assert_one_line_error(result, "has no probes (probes.jsonl) yet")
    assert "--probe-every" in result.output
    rows = [_probe(100, [[0.1, 0.0, 0.0], [0.0, 0.2, 0.6]]),
            _probe(200, [[0.2, 0.0, 0.4], [0.0, 0.55, 0.4]])]
    run.probes_path.write_text("".join(r.to_line() for r in rows) + '{"iter": 3')
    result = invoke("runs", "show", run.id, "--emergence")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "posX   iteration 100: latent 1 carries 0.60",
        "scale  iteration 200: latent 1 carries 0.55",
        "shape  not yet (no latent above half of it)"]
    result = invoke("runs", "show", run.id, "--emergence", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["threshold"] == 0.5 and data["run"] == run.id
    assert data["factors"][1] == {"factor": "scale", "iteration": 200, "latent": 1,
                                  "share": 0.55}
