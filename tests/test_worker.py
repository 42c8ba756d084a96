"""The detached worker as real processes: survives its terminal, SIGKILL -> lost -> resume,
SIGTERM -> stopped with a checkpoint -> resume -> finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bvae_tui.engine.runs.store import Run
from tests.conftest import bvae_command
from tests.test_records import ROW_KEYS

TINY = ["--dataset", "dsprites-mini", "--device", "cpu", "--batch-size", "16", "--z-dim", "3",
        "--preview-every", "0"]


def bvae(env, *args, timeout=120):
    return subprocess.run([*bvae_command(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def listed(env) -> dict[str, dict]:
    out = bvae(env, "runs", "--json")
    assert out.returncode == 0, out.stderr
    return {r["id"]: r for r in json.loads(out.stdout)}


def raw_rows(run: Run) -> list[dict]:
    """metrics.jsonl as written: the field names other tools read."""
    return [json.loads(line) for line in run.metrics_path.read_text().splitlines()]


def wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_detached_run_survives_its_terminal_and_finishes(env, runs_dir):
    # The launching "terminal": a shell that is its own session leader, like a login shell.
    shell = subprocess.Popen(
        ["bash", "-c", " ".join([*bvae_command(), "train", *TINY, "--iterations", "150",
                                 "--log-every", "25", "--detach"]) + "; exec sleep 300"],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        run_id = shell.stdout.readline().strip()
        run = Run(runs_dir / run_id)
        assert run.path.is_dir(), run_id
        states = [listed(env)[run_id]["state"]]
        assert states[0] in ("queued", "running")
        pid = wait_for(lambda: run.raw_status().state == "running"
                       and run.raw_status().pid, what="the worker to start")
        assert os.getsid(pid) != os.getsid(shell.pid)  # its own session, not the terminal's
        states.append(listed(env)[run_id]["state"])
        # Close the terminal: hang up its whole session, then kill it outright.
        os.killpg(shell.pid, signal.SIGHUP)
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait(timeout=10)
        wait_for(lambda: run.status().state != "running", what="the run to end")
        states.append(listed(env)[run_id]["state"])
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert "running" in states and states[-1] == "finished", states
    rows = run.metrics()
    assert [r.iter for r in rows] == [25, 50, 75, 100, 125, 150]
    assert all(set(r) == ROW_KEYS for r in raw_rows(run))
    log = run.log_path.read_text()
    assert "worker done: finished" in log
    # The precision --amp auto chose, in worker.log and config.json (float32 in the test suite:
    # tests/conftest.py; tests/test_precision.py covers the choice itself).
    assert "precision: float32 (--amp auto: " in log
    precision = run.record().precision or {}
    assert (precision.get("amp"), precision.get("used")) == ("auto", "off")


def test_kill_lost_resume_stop_resume(env, runs_dir):
    out = bvae(env, "train", *TINY, "--iterations", "300", "--log-every", "20",
               "--checkpoint-every", "20", "--detach")
    assert out.returncode == 0, out.stderr
    run = Run(runs_dir / out.stdout.strip())
    ckpt: Path = run.last_checkpoint
    wait_for(ckpt.exists, what="the first checkpoint")
    pid = run.raw_status().pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: run.status().state == "lost", timeout=10, what="lost")
    assert listed(env)[run.id]["state"] == "lost"

    out = bvae(env, "resume", run.id[:12], "--detach")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: run.raw_status().pid not in (None, pid)
             and run.raw_status().state == "running"
             and (run.raw_status().iteration or 0) > 0, what="the resumed worker")
    out = bvae(env, "stop", run.id)
    assert out.returncode == 0, out.stderr
    status = run.status()
    assert status.state == "stopped", status
    assert f"stopped at iteration {status.iteration}" in out.stdout
    from bvae_tui.engine.train.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt)["iteration"] == status.iteration < 300

    out = bvae(env, "resume", run.id)  # in the foreground this time
    assert out.returncode == 0, out.stderr
    assert run.status().state == "finished" and run.status().iteration == 300
    iters = [r.iter for r in run.metrics()]
    assert iters == sorted(set(iters)) and iters[-1] == 300  # no duplicates after the crash
    assert all(set(r) == ROW_KEYS for r in raw_rows(run))
