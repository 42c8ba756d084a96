"""Recovering from crashes and mistakes: checkpoints by time, the previous checkpoint, debris,
non-finite losses and a resume with a lower lr on another device, strict JSON, GPUs that are
gone. In-process training on the CPU (tiny runs), the CLI through CliRunner."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

import bvae_tui.engine.train.trainer as trainer
from bvae_tui.cli.main import app
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs import devices
from bvae_tui.engine.runs.files import strict_json, write_json_atomic
from bvae_tui.engine.runs.recovery import remove_debris
from bvae_tui.engine.runs.resume import plan_resume
from bvae_tui.engine.train.checkpoint import checkpoint_path, load_checkpoint
from bvae_tui.engine.train.trainer import train
from tests.test_devices import fake_nvml
from tests.test_trainer import _run

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def _refuse(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_rows(run) -> list[dict]:
    """metrics.jsonl as a strict JSON reader (JavaScript's JSON.parse, jq) reads it."""
    return [json.loads(line, parse_constant=_refuse)
            for line in run.metrics_path.read_text().splitlines()]


def _saved_iterations(monkeypatch) -> list[int]:
    saved: list[int] = []
    real = trainer.save_checkpoint

    def spy(path, state, keep=None):
        saved.append(state["iteration"])
        real(path, state, keep=keep)

    monkeypatch.setattr(trainer, "save_checkpoint", spy)
    return saved


def _stop_at(iteration: int):
    """``should_stop`` and ``on_row`` that stop a run right after its row at ``iteration``."""
    flag = {"stop": False}

    def on_row(row) -> None:
        flag["stop"] = flag["stop"] or row.iter == iteration

    return (lambda: flag["stop"]), on_row


@pytest.mark.parametrize("minutes, expected", [(1e-6, [10, 20, 30, 40]), (0.0, [40])])
def test_checkpoints_come_by_time_at_rows(runs_dir, mini_data_dir, monkeypatch, minutes,
                                          expected):
    saved = _saved_iterations(monkeypatch)
    run = _run(runs_dir, mini_data_dir, iterations=40, checkpoint_every=1000,
               checkpoint_minutes=minutes)
    assert train(run) == "finished"
    assert saved == expected  # 0: by iterations only (and at the end)
    assert load_checkpoint(run.last_checkpoint)["iteration"] == 40
    if len(expected) > 1:  # the one before stays beside it
        assert load_checkpoint(run.previous_checkpoint)["iteration"] == 30


def test_unreadable_last_checkpoint_falls_back_to_the_previous(runs_dir, mini_data_dir, capsys):
    full = _run(runs_dir, mini_data_dir, name="full", iterations=60)
    assert train(full) == "finished"
    run = _run(runs_dir, mini_data_dir, name="cut", iterations=60)
    should_stop, on_row = _stop_at(30)
    assert train(run, should_stop=should_stop, on_row=on_row) == "stopped"
    assert load_checkpoint(run.previous_checkpoint)["iteration"] == 20
    data = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(data[: len(data) // 2])  # cut short, as by a full disk
    capsys.readouterr()

    # Export and eval load the previous checkpoint, and say so in one line.
    assert checkpoint_path(run) == run.previous_checkpoint
    warning = capsys.readouterr().err.strip()
    assert warning.count("\n") == 0 and "last.pt is corrupt" in warning and "prev.pt" in warning
    plan = plan_resume(run)
    assert not plan.from_zero and "prev.pt" in plan.note
    plan.lock.release()

    assert train(run, resume=True) == "finished"
    assert "resuming from prev.pt, the checkpoint before it (iteration 20)" in \
        capsys.readouterr().err
    rows = {r.iter: r for r in run.metrics()}
    assert sorted(rows) == [10, 20, 30, 40, 50, 60]  # row 30 again, once
    reference = {r.iter: r for r in full.metrics()}
    for it in rows:  # resumed from 20, it reproduces the uninterrupted run exactly
        assert rows[it].loss == pytest.approx(reference[it].loss, rel=1e-6), it

    # Both broken: one line, and the way out.
    for path in (run.last_checkpoint, run.previous_checkpoint):
        path.write_bytes(b"PK\x03\x04 cut")
    run.write_status(state="stopped")
    with pytest.raises(RunError, match="no readable checkpoint.*--restart"):
        plan_resume(run)


def test_debris_of_interrupted_writes_is_removed_at_the_next_start(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir, iterations=10, preview_every=10)
    run.checkpoint_dir.mkdir()
    run.previews_dir.mkdir()
    run.exports_dir.mkdir()
    debris = [run.path / ".status.k3j_x9aq.json", run.path / ".config.abcdefgh.json",
              run.path / ".metrics.jsonl.tmp", run.checkpoint_dir / ".last.0a1b2c3d.pt",
              run.checkpoint_dir / ".keep-prev.pt", run.previews_dir / ".traversal.zzzzzzzz.png",
              run.path / ".eval.qwertyui.json", run.exports_dir / ".traversal.asdfghjk.gif"]
    fresh = [run.path / ".eval.fresh123.json", run.exports_dir / ".grid.fresh123.png"]
    kept = [run.path / "notes.txt", run.checkpoint_dir / "best.pt", run.path / ".lockless",
            *fresh]
    for path in debris + kept:
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    for path in debris[-2:]:  # eval's and export's temp files: only once old
        os.utime(path, (hour_ago, hour_ago))

    # Meanwhile every reader ignores them.
    assert run.status().state == "queued" and run.metrics() == []
    listed = invoke("runs", "--json")
    assert listed.exit_code == 0 and [r["id"] for r in json.loads(listed.output)] == [run.id]

    assert train(run) == "finished"
    assert not [p for p in debris if p.exists()]
    assert all(p.exists() for p in kept)
    assert remove_debris(run) == []


def test_nan_then_resume_with_a_lower_lr_on_another_device(runs_dir, mini_data_dir,
                                                           monkeypatch):
    from bvae_tui.engine.train.objectives.h_b import Higgins

    real = Higgins.loss

    def poisoned(self, out, iteration):
        values = real(self, out, iteration)
        if self.cfg.lr > 5e-5 and iteration >= 25:  # diverges at the original learning rate only
            values["loss"] = values["loss"] * float("nan")
        return values

    monkeypatch.setattr(Higgins, "loss", poisoned)
    run = _run(runs_dir, mini_data_dir, iterations=40, lr=1e-4, device="auto")
    assert train(run) == "failed"
    error = run.status().error
    assert "non-finite (nan) at iteration 25" in error
    assert "last good checkpoint is at iteration 20" in error
    assert f"'bvae resume {run.id} --lr 2.5e-05'" in error
    assert load_checkpoint(run.last_checkpoint)["iteration"] == 20  # it survived

    # The advice, followed as given (and onto the CPU explicitly).
    resumed = invoke("resume", run.id, "--lr", "2.5e-05", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert "lr 0.0001 -> 2.5e-05 from the resumed iteration on" in resumed.output
    assert run.status().state == "finished" and run.status().iteration == 40
    assert [r.iter for r in run.metrics()] == [10, 20, 30, 40]
    record = run.record()
    assert record.config["lr"] == 2.5e-05 and record.config["device"] == "cpu"
    assert [(c["iteration"], c["field"], c["old"], c["new"]) for c in record.changes] == [
        (20, "lr", 1e-4, 2.5e-05), (20, "device", "auto", "cpu")]
    saved = load_checkpoint(run.last_checkpoint)
    assert saved["optimizer"]["param_groups"][0]["lr"] == 2.5e-05
    shown = invoke("runs", "show", run.id)
    assert "changed at iteration 20: lr 0.0001 -> 2.5e-05" in shown.output


def test_run_on_a_gpu_that_is_gone_resumes_on_the_cpu(runs_dir, mini_data_dir, monkeypatch):
    run = _run(runs_dir, mini_data_dir, iterations=10)
    run.update_record(config={**run.record().config, "device": "cuda:7"})
    run.write_status(state="stopped", iteration=0)
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml([("NVIDIA T4", 1, 2, 0)]))
    refused = invoke("resume", run.id)
    assert refused.exit_code == 1 and "there is no GPU 7" in refused.output
    assert "--device cpu" in refused.output  # advice that can be followed
    resumed = invoke("resume", run.id, "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert run.status().state == "finished" and run.config.device == "cpu"
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml(driver=False))
    auto = invoke("train", "--dataset", "dsprites-mini", "--gpu", "auto", "--iterations", "1",
                  "--z-dim", "2", "--batch-size", "4", "--preview-every", "0",
                  "--data-dir", str(mini_data_dir))
    assert auto.exit_code == 0, auto.output
    assert "--gpu auto: no GPU to use (no NVIDIA driver found" in auto.output
    assert "training on the CPU" in auto.output


def test_a_bad_value_in_config_json_says_where_it_came_from(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir, iterations=10)
    assert train(run) == "finished"
    run.update_record(config={**run.record().config, "beta": -5})
    run.write_status(state="stopped")
    for args in (("resume", run.id), ("export", "gif", run.id), ("eval", run.id, "--fast")):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.count("\n") == 1, result.output
        assert "config.json has beta = -5, which must be at least 0" in result.output


def test_rows_of_huge_but_finite_steps_stay_finite(runs_dir, mini_data_dir, monkeypatch):
    """Each step's loss is finite (3e38, near float32's limit); ten of them overflowed a
    float32 sum, and the row said Infinity."""
    from bvae_tui.engine.train.objectives.h_b import Higgins

    real = Higgins.loss

    def huge(self, out, iteration):
        values = real(self, out, iteration)
        values["loss"] = values["loss"] * 0 + 3e38  # zero gradients: only the logged value is huge
        return values

    monkeypatch.setattr(Higgins, "loss", huge)
    run = _run(runs_dir, mini_data_dir, iterations=20)
    assert train(run) == "finished"
    rows = strict_rows(run)
    assert [r["loss"] for r in rows] == pytest.approx([3e38, 3e38], rel=1e-6)
    listed = invoke("runs", "--json")
    assert json.loads(listed.output, parse_constant=_refuse)[0]["loss"] == \
        pytest.approx(3e38, rel=1e-6)


def test_no_nan_or_infinity_in_any_file_or_json_output(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir)
    run.write_status(state="finished", iteration=30)
    # An older version wrote Infinity into a row: read as missing, printed as null.
    run.metrics_path.write_text('{"iter": 30, "loss": Infinity, "kl": NaN, "recon": 5.0}\n')
    listed = invoke("runs", "--json")
    assert "Infinity" not in listed.output and "NaN" not in listed.output
    [summary] = json.loads(listed.output)
    assert summary["loss"] is None and summary["kl"] is None
    shown = invoke("runs", "show", run.id, "--json")
    assert shown.exit_code == 0 and "Infinity" not in shown.output and "NaN" not in shown.output
    # Any JSON file: null, and the places listed under "nonfinite".
    write_json_atomic(run.path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((run.path / "x.json").read_text()) == {
        "a": None, "b": [1.0, None], "nonfinite": ["a", "b[1]"]}
    assert strict_json([float("-inf")]) == "[null]"
    with pytest.raises(TypeError):  # the typed writers refuse them outright
        run.write_status(heartbeat=float("nan"))


def test_long_reasons_are_cut_at_a_word():
    from bvae_tui.errors import brief

    assert brief("Weights only load failed. In PyTorch 2.6 we changed the default", 40) == \
        "Weights only load failed. In PyTorch..."
    assert brief(ValueError("")) == "ValueError"
    assert brief("short\nsecond line") == "short"


def test_integer_bounds_are_shown_whole():
    result = invoke("train", "--dataset", "dsprites-mini", "--batch-size", "100000000")
    assert result.exit_code == 1 and "got 100000000" in result.output


def test_runs_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("")
    result = invoke("runs", "--runs-dir", str(blocker))
    assert result.exit_code == 1 and "is a file, not a folder" in result.output


def test_show_a_run_without_a_total(runs_dir, mini_data_dir):
    run = _run(runs_dir, mini_data_dir)
    run.status_path.write_text(json.dumps({"state": "stopped", "iteration": 5}))
    run.update_record(config={k: v for k, v in run.record().config.items()
                              if k != "iterations"})
    shown = invoke("runs", "show", run.id)
    assert shown.exit_code == 0 and "None" not in shown.output.splitlines()[0]
