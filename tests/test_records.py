"""The run directory's contract: tolerant readers, strict writers, one summary for both faces,
one state colour map, and docs/run-directory.md generated from the records."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.runs.records import (
    ACTIVE_STATES,
    STATES,
    EvalResult,
    MetricsRow,
    RunRecord,
    RunSummary,
    Status,
    markdown,
)
from bvae_tui.engine.runs.store import Run, create_run
from bvae_tui.styles import STATE_STYLES, state_style
from bvae_tui.tui.run_data import RunRow, RunsPoller
from tests.conftest import ROOT
from tests.tui_helpers import make_run, metrics_row

# The JSON field names existing runs (and scripts) have: renaming one breaks them.
STATUS_KEYS = {"state", "iteration", "total", "phase", "device", "pid", "pid_start", "error",
               "eval_error", "created", "launched", "started", "heartbeat", "updated", "host",
               "job", "memory_peak"}
ROW_KEYS = {"iter", "time", "elapsed", "loss", "recon", "kl", "kl_per_latent", "mu_mean",
            "var_mean", "c", "img_per_s", "mi", "tc", "dw_kl", "disc_acc", "dip_od", "dip_d"}
EVAL_KEYS = {"scores", "details", "params", "timings", "seed", "fast", "exact", "run",
             "iteration", "checkpoint", "dataset", "factors", "device", "arch", "z_dim", "encoded",
             "seconds", "created", "cpu_timings", "mi", "factor_entropy"}
RECORD_KEYS = {"config", "name", "data_dir", "created", "host", "versions", "dataset_source",
               "dataset_count", "sweep", "sweep_values", "changes", "precision"}
RUNS_JSON_KEYS = ["id", "name", "path", "state", "iteration", "total", "device", "dataset",
                  "objective", "created", "updated", "error", "loss", "kl", "img_per_s", "sweep"]


def runs_json() -> list[dict]:
    result = CliRunner().invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_field_names_stay_those_on_disk():
    assert set(Status().to_dict()) == STATUS_KEYS
    assert set(MetricsRow().to_dict()) == ROW_KEYS
    assert set(EvalResult().to_dict()) == EVAL_KEYS
    assert set(RunRecord().to_dict()) == RECORD_KEYS
    assert list(RunSummary.JSON_KEYS) == RUNS_JSON_KEYS


def test_records_round_trip():
    row = metrics_row(30)
    assert MetricsRow.from_dict(json.loads(row.to_line())) == row
    status = Status(state="running", iteration=3, total=9, pid=12, pid_start=34, device="cpu",
                    started=1.5, updated=2.0, extra={"later": [1]})
    assert Status.from_dict(json.loads(json.dumps(status.to_dict()))) == status
    result = EvalResult(scores={"mig": 0.25}, details={"mig": {"entropy": [1.0]}}, seed=0,
                        fast=True, factors=["shape", "scale"], iteration=100)
    assert EvalResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_an_older_file_without_newer_keys_still_reads(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "old", "stopped")
    run.status_path.write_text(json.dumps({"state": "stopped", "iteration": 7}))
    status = run.status()
    assert (status.state, status.iteration, status.total, status.updated) == ("stopped", 7, None,
                                                                             None)
    assert MetricsRow.from_dict({"iter": 5, "loss": 1.0}).kl_per_latent is None
    assert EvalResult.from_dict({"scores": {"mig": 0.5}}).details == {}
    [listed] = runs_json()
    assert listed["state"] == "stopped" and listed["iteration"] == 7
    assert listed["total"] == 100  # the config says how long it trains


def test_unknown_keys_survive_a_rewrite(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "newer", "stopped")
    future = {"study": {"id": "s1", "member": 3}, "note_v9": "kept"}
    status = json.loads(run.status_path.read_text())
    run.status_path.write_text(json.dumps({**status, **future}))
    run.write_status(iteration=40)
    on_disk = json.loads(run.status_path.read_text())
    assert {k: on_disk[k] for k in future} == future and on_disk["iteration"] == 40
    assert run.status().extra == future

    record = json.loads(run.config_path.read_text())
    run.config_path.write_text(json.dumps({**record, **future}))
    run.update_record(dataset_source="procedural")
    assert json.loads(run.config_path.read_text())["study"] == future["study"]

    with open(run.metrics_path, "a") as fh:
        fh.write(json.dumps({**metrics_row(40).to_dict(), "grad_norm": 2.5}) + "\n")
        fh.write(metrics_row(50).to_line())
    run.truncate_metrics(40)  # what a resume from iteration 40 does
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert [r["iter"] for r in rows] == [10, 20, 30, 40] and rows[-1]["grad_norm"] == 2.5

    run.eval_path.write_text(json.dumps({"scores": {"mig": 0.5}, "dci": {"d": 0.7}}))
    run.write_eval(run.eval_results())
    assert json.loads(run.eval_path.read_text())["dci"] == {"d": 0.7}


def test_values_of_the_wrong_type_read_as_missing(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "damaged", "running")
    run.status_path.write_text(json.dumps({
        "state": "running", "iteration": "50", "updated": "yesterday", "pid": True,
        "pid_start": "x", "total": 1.5, "error": 7, "device": ["cpu"]}))
    status = run.raw_status()
    assert status.state == "running"
    assert all(getattr(status, name) is None for name in
               ("iteration", "updated", "pid", "pid_start", "total", "error", "device"))
    assert run.status().state == "lost"  # no worker behind it, and nothing raised
    row = MetricsRow.from_dict({"iter": "5", "loss": "x", "kl": True, "kl_per_latent": [1, "a"],
                                "mu_mean": 3, "c": None, "img_per_s": 10})
    assert (row.iter, row.loss, row.kl, row.kl_per_latent, row.mu_mean, row.c) == (None,) * 6
    assert row.img_per_s == 10.0
    result = EvalResult.from_dict({"scores": {"mig": "high"}, "iteration": "5", "fast": 1})
    assert (result.scores, result.iteration, result.fast) == ({}, None, None)
    assert Status.from_dict(["not", "an", "object"]) == Status()
    assert Status.from_dict({"updated": 10**400}).updated is None  # too large for a float

    # Both faces still list the run.
    [listed] = runs_json()
    assert listed["state"] == "lost" and listed["iteration"] == 30  # from the last metrics row
    listing = CliRunner().invoke(app, ["runs"])
    assert listing.exit_code == 0 and run.id in listing.output and "lost" in listing.output
    [row] = RunsPoller(runs_dir).poll()
    assert row.state == "lost" and row.iteration == 30 and "is gone" in row.error


def test_writers_refuse_what_their_reader_would_drop(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "strict", "stopped")
    before = run.status_path.read_text()
    with pytest.raises(TypeError, match="iteration"):
        run.write_status(iteration="50")
    with pytest.raises(TypeError, match="no_such_field"):
        run.write_status(no_such_field=1)
    assert run.status_path.read_text() == before
    with pytest.raises(TypeError, match="kl_per_latent"):
        MetricsRow(iter=1, kl_per_latent=[0.5, None]).to_line()
    with pytest.raises(TypeError, match="fast"):
        EvalResult(fast=1).to_dict()


def test_bvae_runs_and_the_tui_table_show_the_same_summary(runs_dir, tmp_path):
    finished = make_run(runs_dir, tmp_path, "f", "finished", objective="B", gamma=100.0,
                        c_max=20.0)
    finished.write_status(eval_error="no factors")
    failed = make_run(runs_dir, tmp_path, "x", "failed", error="loss became NaN")
    listed = {r["id"]: r for r in runs_json()}
    rows = {r.id: r for r in RunsPoller(runs_dir).poll()}
    for run in (finished, failed):
        summary = run.summary()
        assert listed[run.id] == summary.as_json()
        assert rows[run.id] == RunRow.from_summary(summary, rows[run.id].source)
    assert rows[finished.id].error == "evaluation failed: no factors"
    assert listed[finished.id]["objective"] == "B" and rows[finished.id].objective == "B γ100 C20"
    assert listed[failed.id]["error"] == rows[failed.id].error == "loss became NaN"


def test_both_faces_list_runs_through_run_summary(runs_dir, tmp_path, monkeypatch):
    make_run(runs_dir, tmp_path, "real", "stopped")

    def fake(self: Run, cache=None) -> RunSummary:
        return RunSummary(id=self.id, name="from-summary", path=str(self.path), state="queued",
                          iteration=3, total=4, loss=1.25)

    monkeypatch.setattr(Run, "summary", fake)
    [listed] = runs_json()
    assert listed["name"] == "from-summary" and listed["iteration"] == 3
    assert "3/4" in CliRunner().invoke(app, ["runs"]).output
    [row] = RunsPoller(runs_dir).poll()
    assert (row.name, row.state, row.progress, row.loss) == ("from-summary", "queued", "3/4",
                                                             1.25)


def test_summary_of_a_run_being_created_and_of_a_broken_config(runs_dir, tmp_path):
    from bvae_tui.engine.config import TrainConfig

    fresh = create_run(runs_dir, TrainConfig(dataset="dsprites-mini", iterations=10), tmp_path)
    summary = fresh.summary()
    assert (summary.state, summary.iteration, summary.total, summary.loss) == ("queued", 0, 10,
                                                                              None)
    assert summary.active and summary.note == "" and summary.duration is None
    fresh.config_path.write_text("[]")
    broken = fresh.summary()
    assert broken.config == {} and "corrupt" in broken.error and broken.name == fresh.id


def test_one_state_list_one_colour_map():
    assert set(STATE_STYLES) == set(STATES)
    assert len(set(STATE_STYLES.values())) == len(STATES)  # every state tells itself apart
    assert state_style("no-such-state") == ""
    assert [s for s in STATES if Status(state=s).active] == list(ACTIVE_STATES)
    running = RunSummary(id="a", name="a", path="/a", state="running")
    assert running.active and not dataclasses.replace(running, state="lost").active


def test_docs_run_directory_is_generated_from_the_records():
    doc = ROOT / "docs" / "run-directory.md"
    assert doc.read_text() == markdown(), (
        "docs/run-directory.md is out of date; regenerate it with `make docs`")
    out = subprocess.run([sys.executable, "-m", "bvae_tui.engine.runs.records", "--markdown"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout == markdown()
    for name in (*STATUS_KEYS, *ROW_KEYS, *EVAL_KEYS, *RECORD_KEYS):
        assert f"| `{name}` |" in out.stdout, name  # every field documented


def test_a_running_summary_counts_its_duration(runs_dir, tmp_path):
    live = subprocess.Popen(["sleep", "60"])
    try:
        run = make_run(runs_dir, tmp_path, "r", "running", pid=live.pid)
        run.write_status(started=time.time() - 100, phase="loading data")
        summary = run.summary()
        assert summary.state == "running" and 99 < summary.duration < 200
        assert summary.note == "loading data" and summary.activity == "loading data"
    finally:
        live.kill()
        live.wait()
