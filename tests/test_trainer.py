"""The training loop in-process on the CPU: metrics rows, checkpoints, exact resume, failures."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from bvae_tui.engine.config import make_config
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.store import create_run
from bvae_tui.engine.train.checkpoint import load_checkpoint, load_model
from bvae_tui.engine.train.sampler import BatchSampler
from bvae_tui.engine.train.trainer import train
from tests.test_records import ROW_KEYS

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(runs_dir, data_dir, name=None, **overrides):
    values = dict(dataset="dsprites-mini", device="cpu", z_dim=3, batch_size=16, iterations=30,
                  log_every=10, checkpoint_every=10, preview_every=0, seed=3)
    values.update(overrides)
    return create_run(runs_dir, make_config(**values), data_dir, name=name)


def test_training_writes_rows_checkpoint_and_status(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir, objective="B", gamma=10.0, c_max=10.0, c_stop_iter=20,
               preview_every=20)
    seen = []
    assert train(run, on_row=seen.append) == "finished"
    rows = run.metrics()
    assert [r.iter for r in rows] == [10, 20, 30] and seen == rows
    written = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert all(set(row) == ROW_KEYS for row in written)  # the field names other tools read
    for row in rows:
        assert all(len(v) == 3 for v in (row.kl_per_latent, row.mu_mean, row.var_mean))
        assert all(v > 0 for v in row.var_mean) and row.img_per_s > 0
    # C is averaged over each interval: iterations 1..10 of a ramp to 10 over 20 steps
    assert rows[0].c == pytest.approx(sum(10 * i / 20 for i in range(1, 11)) / 10)
    assert rows[2].c == pytest.approx(10.0)
    # Learning lowers the reconstruction error: rows 10 / 30 measured 1.08-1.55 over seeds 0-5,
    # an ordering any trajectory shows, not a bound tuned on one.
    assert rows[0].recon > rows[-1].recon
    status = run.status()
    assert status.state == "finished" and status.iteration == 30
    assert status.device == "cpu" and status.error is None
    assert run.preview_path("traversal").exists() and run.preview_path("recon").exists()

    # The checkpoint opens with the safe loader, holds everything, and rebuilds the model.
    raw = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    assert raw["iteration"] == 30 and raw["config"]["objective"] == "B"
    assert {"torch", "numpy", "python", "batches"} <= set(raw["rng"])
    assert raw["optimizer"]["state"]
    model, cfg, iteration = load_model(run)
    assert iteration == 30 and cfg.z_dim == 3 and not model.training
    assert all(t.device.type == "cpu" for t in model.state_dict().values())


def test_stopped_and_resumed_run_reproduces_the_uninterrupted_one(runs_dir, mini_data_dir):
    settings = dict(objective="B", gamma=10.0, c_max=5.0, c_stop_iter=25, iterations=40)
    full = _run(runs_dir, mini_data_dir, name="full", **settings)
    assert train(full) == "finished"

    split = _run(runs_dir, mini_data_dir, name="split", **settings)
    calls = {"n": 0}

    def stop_after_15() -> bool:
        calls["n"] += 1
        return calls["n"] > 15

    assert train(split, should_stop=stop_after_15) == "stopped"
    assert split.status().state == "stopped" and split.status().iteration == 15
    assert load_checkpoint(split.last_checkpoint)["iteration"] == 15
    assert train(split, resume=True) == "finished"

    a = {r.iter: r.to_dict() for r in full.metrics()}
    b = {r.iter: r.to_dict() for r in split.metrics()}
    assert sorted(b) == [10, 15, 20, 30, 40]  # a partial row at the stop, then aligned rows
    for it in (10, 30, 40):
        for key in ("loss", "recon", "kl", "c"):
            assert b[it][key] == pytest.approx(a[it][key], rel=1e-6, abs=1e-9), (it, key)
        assert b[it]["kl_per_latent"] == pytest.approx(a[it]["kl_per_latent"], rel=1e-5)
    wa = load_checkpoint(full.last_checkpoint)["model"]
    wb = load_checkpoint(split.last_checkpoint)["model"]
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-5, atol=1e-7)


def test_resume_after_a_crash_drops_rows_past_the_checkpoint(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir, iterations=20, checkpoint_every=100)
    calls = {"n": 0}

    def stop_after_10() -> bool:
        calls["n"] += 1
        return calls["n"] > 10

    assert train(run, should_stop=stop_after_10) == "stopped"
    at_10 = run.last_checkpoint.read_bytes()
    assert train(run, resume=True) == "finished"
    assert [r.iter for r in run.metrics()] == [10, 20]
    # Pretend the worker died after writing row 20 but before its final checkpoint.
    run.last_checkpoint.write_bytes(at_10)
    run.write_status(state="running", pid=999_999_999, pid_start=1)
    assert run.status().state == "lost"
    assert train(run, resume=True) == "finished"
    assert [r.iter for r in run.metrics()] == [10, 20]
    assert load_checkpoint(run.last_checkpoint)["iteration"] == 20


def test_non_finite_loss_fails_with_its_iteration(runs_dir, mini_data_dir, monkeypatch):
    from bvae_tui.engine.train.objectives.h_b import Higgins

    real = Higgins.loss

    def poisoned(self, out, iteration):
        values = real(self, out, iteration)
        if iteration == 7:
            values["loss"] = values["loss"] * float("nan")
        return values

    monkeypatch.setattr(Higgins, "loss", poisoned)
    run = _run(runs_dir, mini_data_dir, iterations=20)
    assert train(run) == "failed"
    status = run.status()
    assert status.state == "failed" and status.iteration == 7
    assert "non-finite" in status.error and "iteration 7" in status.error
    assert not run.last_checkpoint.exists()  # a spoilt model is never saved


def test_out_of_memory_fails_with_a_hint(runs_dir, mini_data_dir, monkeypatch):
    import bvae_tui.engine.train.trainer as trainer

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "build_model", no_memory)
    run = _run(runs_dir, mini_data_dir)
    assert train(run) == "failed"
    error = run.status().error
    assert "out of memory" in error and "--batch-size" in error and "\n" not in error


def test_missing_data_fails_with_the_reason(runs_dir, tmp_path):
    run = _run(runs_dir, tmp_path / "empty-data", dataset="celeba")
    assert train(run) == "failed"
    status = run.status()
    assert status.state == "failed" and "celeba" in status.error.lower()


def test_corrupt_checkpoint_is_a_one_line_error(runs_dir, mini_data_dir, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunError, match="corrupt") as info:
        load_checkpoint(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(RunError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    run = _run(runs_dir, mini_data_dir, iterations=10)
    run.checkpoint_dir.mkdir()
    run.last_checkpoint.write_bytes(b"garbage")
    assert train(run, resume=True) == "failed"
    assert "corrupt" in run.status().error
    assert not zipfile.is_zipfile(run.last_checkpoint)  # left as it was for inspection


def test_eval_at_end_calls_the_evaluator(runs_dir, mini_data_dir, monkeypatch):
    import bvae_tui.engine.analysis.evaluate as evaluate  # the trainer imports it at the end

    called = []
    monkeypatch.setattr(evaluate, "evaluate_run", lambda run, **kw: called.append(run.id) or {})
    run = _run(runs_dir, mini_data_dir, iterations=10, eval_at_end=True)
    assert train(run) == "finished"
    assert called == [run.id]


def test_batch_sampler_walks_epochs_and_restores_exactly():
    sampler = BatchSampler(10, 4, seed=0)
    first_epoch = torch.cat([sampler.next() for _ in range(2)] + [sampler.next()[:2]])
    assert sorted(first_epoch.tolist()) == list(range(10))
    saved = sampler.state_dict()
    ahead = [sampler.next() for _ in range(5)]
    again = BatchSampler(10, 4, seed=0)
    again.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(ahead, [again.next() for _ in range(5)],
                                                  strict=True))


def test_metrics_file_is_valid_json_lines(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir, iterations=10)
    train(run)
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["iter"] == 10


@pytest.mark.parametrize("broken_half", ["first", "second"])
def test_the_adam_fallback_trains_and_its_checkpoints_resume_either_way(
        runs_dir, mini_data_dir, monkeypatch, capsys, broken_half):
    """Where torch._fused_adam_ fails its start-up check the run trains on torch.optim.Adam and
    the log says so; a checkpoint written by either optimiser resumes in the other."""
    import bvae_tui.engine.train.adam as adam

    run = _run(runs_dir, mini_data_dir, iterations=20, log_every=5, checkpoint_every=10)
    calls = {"n": 0}

    def stop_after_10() -> bool:
        calls["n"] += 1
        return calls["n"] > 10

    for half in ("first", "second"):
        with monkeypatch.context() as m:
            m.setattr(adam, "_probed", {})  # a fresh process checks the op again
            if half == broken_half:
                m.delattr(torch, "_fused_adam_")
            state = train(run, resume=half == "second",
                          should_stop=stop_after_10 if half == "first" else None)
        assert state == ("stopped" if half == "first" else "finished")
        warned = "torch.optim.Adam" in capsys.readouterr().err
        assert warned == (half == broken_half)
    saved = load_checkpoint(run.last_checkpoint)
    assert saved["iteration"] == 20
    # Adam's moments and step counts carried over the switch (a fresh optimiser would say 10).
    assert {float(s["step"]) for s in saved["optimizer"]["state"].values()} == {20.0}
    assert [r.iter for r in run.metrics()] == [5, 10, 15, 20]
