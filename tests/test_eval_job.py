"""Detached evaluations (engine/runs/eval_job.py, `bvae eval RUN --detach`): a real background
process writes eval.json as `bvae eval` does and its progress into eval_job.json; a run being
trained or evaluated is refused in one line; a failed evaluation says why and keeps eval.json."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from typer.testing import CliRunner

from bvae_tui.engine.runs.eval_job import EvalLock, job_status, launch_eval
from bvae_tui.engine.runs.eval_progress import progress_text
from bvae_tui.engine.runs.lock import RunLock
from bvae_tui.engine.runs.records import EvalJob
from bvae_tui.engine.train.checkpoint import save_checkpoint
from bvae_tui.engine.train.models import build_model
from tests.test_eval import _make_run as _queued_run


def _make_run(runs_dir, data_dir, name="ev"):
    """A finished run with a real (untrained) checkpoint."""
    run, model = _queued_run(runs_dir, data_dir, name=name)
    run.write_status(state="finished", iteration=7)
    return run, model


def _cli(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


def wait_job(run, timeout: float = 240.0) -> EvalJob:
    """The job's record once it has ended (finished, failed or lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_status(run)
        if job is not None and job.state in ("finished", "failed", "lost"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"the evaluation of {run.id} did not end in {timeout:.0f}s")


def test_detach_scores_in_the_background_as_bvae_eval_does(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    res = _cli("eval", run.id, "--detach", "--fast", "--metrics", "mig", "--seed", "2", "--json")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown["runs"] == [run.id] and shown["refused"] == [] and shown["pid"] > 0
    assert job_status(run).state in ("queued", "running", "finished")
    job = wait_job(run)
    assert job.state == "finished", job.error
    assert (job.done, job.total, job.metrics, job.fast) == (1, 1, ["mig"], True)
    saved = json.loads(run.eval_path.read_text())
    # The foreground command on the same options gives the same file (same code, same seed).
    again = _cli("eval", run.id, "--fast", "--metrics", "mig", "--seed", "2", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["scores"] == saved["scores"] and saved["fast"] is True
    assert progress_text(job) is None  # finished: the scores column says the rest
    assert "eval done" in run.log_path.read_text()


def test_a_run_being_trained_is_refused_in_one_line(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    with RunLock(run):  # a trainer holds the run
        res = _cli("eval", run.id, "--detach")
    assert res.exit_code != 0
    assert "is training" in res.output and len(res.output.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert job_status(run) is None and not run.eval_path.exists()


def test_a_second_evaluation_of_the_same_run_is_refused(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    with EvalLock(run):  # another evaluation holds it
        res = _cli("eval", run.id, "--detach", "--fast")
        assert res.exit_code != 0
        assert "already being evaluated" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


def test_several_runs_leave_out_the_busy_one(runs_dir, env_data):
    free, _ = _make_run(runs_dir, env_data, name="free")
    busy, _ = _make_run(runs_dir, env_data, name="busy")
    with RunLock(busy):
        started = launch_eval([busy, free], fast=True, metrics="mig")
    assert [r.id for r in started.runs] == [free.id]
    assert len(started.refused) == 1 and busy.id in started.refused[0]
    assert wait_job(free).state == "finished" and job_status(busy) is None


def test_a_failed_evaluation_says_why_and_keeps_eval_json(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    old = b'{"scores": {"mig": 0.5}, "seed": 0}\n'
    run.eval_path.write_bytes(old)
    # A readable checkpoint whose weights do not fit its own architecture: loading fails only
    # in the evaluating process, after the launch checks passed.
    torch.manual_seed(0)
    wrong = build_model("H", 1, 7)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": wrong.state_dict(),
                                          "iteration": 7, "arch": "H", "channels": 1,
                                          "z_dim": 4, "config": run.config.to_dict()})
    res = _cli("eval", run.id, "--detach", "--fast", "--metrics", "mig")
    assert res.exit_code == 0, res.output
    job = wait_job(run)
    assert job.state == "failed" and job.error and "\n" not in job.error
    assert run.eval_path.read_bytes() == old
    note = progress_text(job)
    assert note.startswith("evaluation failed: ")
    listed = _cli("runs", "--json")
    assert listed.exit_code == 0
    shown = _cli("runs")
    assert "evaluation failed" in shown.output


def test_progress_text_says_where_it_is():
    running = EvalJob(state="running", pid=os.getpid(), total=7, done=3, stage="scoring MIG")
    assert progress_text(running) == "evaluating 3/7 metrics (MIG)"
    encoding = EvalJob(state="running", fast=True, stage="encoding images", stage_done=64,
                       stage_total=4608)
    assert progress_text(encoding) == "evaluating (fast): encoding 64/4608 images"
    assert progress_text(EvalJob(state="queued")) == "evaluation queued"
    assert progress_text(EvalJob(state="finished")) is None


def test_a_job_whose_process_is_gone_reads_lost(runs_dir, env_data):
    from bvae_tui.engine.runs.eval_job import write_job

    run, _ = _make_run(runs_dir, env_data)
    write_job(run, EvalJob(state="running", pid=2**22 + 12345, pid_start=1, host=None))
    job = job_status(run)
    assert job.state == "lost" and "evaluate again" in progress_text(job)


@pytest.mark.parametrize("extra", [["--exact"], ["--checkpoint", "last.pt"]])
def test_detach_refuses_what_it_does_not_do(runs_dir, env_data, extra):
    run, _ = _make_run(runs_dir, env_data)
    res = _cli("eval", run.id, "--detach", *extra)
    assert res.exit_code != 0 and "--detach" in res.output
    assert job_status(run) is None


def test_foreground_eval_and_delete_wait_for_a_detached_evaluation(runs_dir, env_data):
    run, _ = _make_run(runs_dir, env_data)
    with EvalLock(run):
        res = _cli("eval", run.id, "--fast", "--metrics", "mig")
        assert res.exit_code != 0 and "already being evaluated" in res.output
        gone = _cli("runs", "rm", run.id, "--yes")
        assert gone.exit_code != 0 and "being evaluated" in gone.output, gone.output
    assert run.path.is_dir() and not run.eval_path.exists()


def test_an_unconverged_classifier_says_what_it_means():
    from bvae_tui.cli.eval_tables import _note

    note = _note("betavae", {"converged": False}, "dsprites-mini")
    assert "iteration limit" in note and "score" in note
