"""The run store: creation, lookup by prefix, lost workers, the torn-line-tolerant tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.files import last_json_line
from bvae_tui.engine.runs.store import MetricsTail, Run, create_run, delete_run, find_run, list_runs


def _cfg() -> TrainConfig:
    return TrainConfig(dataset="dsprites-mini", iterations=10)


def test_create_run_writes_config_and_queued_status(runs_dir, tmp_path):
    run = create_run(runs_dir, _cfg(), tmp_path / "data", name="my run/../x")
    assert "/" not in run.id and ".." not in run.id
    record = json.loads(run.config_path.read_text())
    assert record["config"]["dataset"] == "dsprites-mini"
    assert set(record) >= {"config", "name", "data_dir", "created", "host", "versions"}
    assert run.status().state == "queued"  # no worker yet, but only just created
    assert run.config == _cfg()
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")]


def test_find_run_by_unique_prefix_and_ambiguity(runs_dir, tmp_path):
    a = create_run(runs_dir, _cfg(), tmp_path, name="alpha")
    b = create_run(runs_dir, _cfg(), tmp_path, name="alpha")  # same second: gets a suffix
    assert a.id != b.id
    assert find_run(runs_dir, a.id).path == a.path
    assert find_run(runs_dir, str(b.path)).path == b.path
    with pytest.raises(RunError, match="matches 2 runs"):
        find_run(runs_dir, a.id[:8])
    with pytest.raises(RunError, match="no run 'zzz'"):
        find_run(runs_dir, "zzz")
    assert len(list_runs(runs_dir)) == 2


def test_dead_worker_reads_as_lost(runs_dir, tmp_path):
    run = create_run(runs_dir, _cfg(), tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status(state="running", pid=proc.pid, pid_start=12345)
    assert run.status().state == "lost"
    assert "bvae resume" in run.status().error
    me = os.getpid()
    from bvae_tui.engine.runs.process import process_start_time

    run.write_status(state="running", pid=me, pid_start=process_start_time(me))
    assert run.status().state == "running"
    with pytest.raises(RunError, match="still running"):
        delete_run(run)
    run.write_status(state="stopped")
    delete_run(run)
    assert not run.path.exists()


def test_metrics_tail_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []
    path.write_text('{"iter": 1}\n{"iter": 2}\n{"iter": 3, "lo')
    assert [r.iter for r in tail.read_new()] == [1, 2]
    with open(path, "a") as fh:
        fh.write('ss": 1.0}\nnot json\n{"iter": 4}\n')
    assert [r.iter for r in tail.read_new()] == [3, 4]
    assert tail.read_new() == []
    run = Run(tmp_path)
    with open(path, "a") as fh:
        fh.write('{"iter": 5')
    assert run.last_metrics().iter == 4
    path.write_text('{"iter": 1}\n')  # replaced (e.g. truncated on resume): reading restarts
    assert [r.iter for r in tail.read_new()] == [1]


def test_corrupt_status_is_failed_not_healthy(runs_dir, tmp_path):
    run = create_run(runs_dir, _cfg(), tmp_path)
    run.status_path.write_text("{not json")
    assert run.status().state == "failed"


def test_last_row_reads_only_the_end(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert last_json_line(path) is None  # missing
    rows = "".join(json.dumps({"iter": i, "pad": "x" * 100}) + "\n" for i in range(500))
    path.write_text(rows + '{"iter": 50')  # the writer is mid-line
    assert last_json_line(path)["iter"] == 499
    assert last_json_line(path, chunk=64)["iter"] == 499  # rows longer than the first read
    last = Run(tmp_path).last_metrics()
    assert last.iter == 499 and last.extra == {"pad": "x" * 100}
    path.write_text(json.dumps({"iter": 7}) + "\nnot json\n")
    assert last_json_line(path) == {"iter": 7}


def test_preview_and_export_paths_come_from_the_store(tmp_path):
    run = Run(tmp_path / "r")
    assert run.preview_paths() == {"traversal": run.path / "previews" / "traversal.png",
                                   "recon": run.path / "previews" / "recon.png"}
    assert run.exports_dir == run.path / "exports"
    with pytest.raises(KeyError):
        run.preview_path("nope")
