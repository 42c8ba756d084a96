"""One writer per run: the run lock, and every command that starts, stops or deletes a worker
respecting it (real processes: two resumes at once, detached and in the foreground)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.lock import RunLock, RunLocked, lock_holder
from bvae_tui.engine.runs.store import Run, create_run, delete_run
from tests.conftest import bvae_command
from tests.test_worker import bvae, wait_for

HOLD = "import sys, time; from bvae_tui.engine.runs.lock import RunLock; " \
       "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"


def _stopped_run(runs_dir, data_dir, iterations: int = 400) -> Run:
    cfg = TrainConfig(dataset="dsprites-mini", device="cpu", batch_size=16, z_dim=3,
                      iterations=iterations, log_every=25, preview_every=0)
    run = create_run(runs_dir, cfg, data_dir)
    run.write_status(state="stopped")
    return run


def _holder_process(run: Run) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_is_exclusive_names_its_holder_and_dies_with_it(runs_dir, tmp_path):
    run = _stopped_run(runs_dir, tmp_path)
    assert lock_holder(run) is None
    proc = _holder_process(run)
    try:
        assert lock_holder(run) == proc.pid
        with pytest.raises(RunLocked, match=f"pid {proc.pid}") as caught:
            RunLock(run).acquire()
        assert caught.value.pid == proc.pid
        with pytest.raises(RunError, match=f"pid {proc.pid}"):
            delete_run(run)
        assert run.path.is_dir()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the kernel frees the lock of a killed holder
        proc.wait()
    assert lock_holder(run) is None
    with RunLock(run) as lock:
        assert lock_holder(run) == os.getpid()
        with pytest.raises(RunLocked):  # another descriptor in this very process is refused
            RunLock(run).acquire()
        assert lock.fd is not None
    assert lock_holder(run) is None
    delete_run(run)
    assert not run.path.exists()


def test_a_deleted_run_cannot_be_locked(runs_dir, tmp_path):
    run = _stopped_run(runs_dir, tmp_path)
    delete_run(run)
    with pytest.raises(RunError, match="does not exist"):
        RunLock(run).acquire()


def test_second_worker_exits_at_once_and_writes_nothing(runs_dir, env_data):
    run = _stopped_run(runs_dir, env_data)
    proc = _holder_process(run)
    try:
        before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
        out = subprocess.run([sys.executable, "-m", "bvae_tui.engine.runs.worker",
                              str(run.path), "--resume"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 3
        assert out.stderr.strip().count("\n") == 0, out.stderr
        assert f"being trained by pid {proc.pid}" in out.stderr
        assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before
    finally:
        proc.kill()
        proc.wait()


def test_two_foreground_resumes_at_once_train_once(env, runs_dir, env_data):
    run = _stopped_run(runs_dir, env_data, iterations=50)
    procs = [subprocess.Popen([*bvae_command(), "resume", run.id], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    error = outs[loser][1].strip()
    assert error.count("\n") == 0 and f"pid {procs[winner].pid}" in error, error
    assert run.status().state == "finished" and run.status().pid == procs[winner].pid
    iters = [r.iter for r in run.metrics()]
    assert iters == [25, 50]  # one trainer: no row twice


def test_two_detached_resumes_then_stop_and_rm(env, runs_dir, env_data):
    run = _stopped_run(runs_dir, env_data, iterations=100_000)
    procs = [subprocess.Popen([*bvae_command(), "resume", run.id, "--detach"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    try:
        assert sorted(p.returncode for p in procs) == [0, 1], outs
        loser = outs[0] if procs[0].returncode else outs[1]
        worker = wait_for(lambda: lock_holder(run), timeout=30, what="the worker's lock")
        assert f"being trained by pid {worker}" in loser[1], (loser, worker)
        wait_for(lambda: run.raw_status().pid == worker, what="the worker's status")

        out = bvae(env, "runs", "rm", run.id, "--yes")
        assert out.returncode == 1 and f"being trained by pid {worker}" in out.stderr, out.stderr
        assert run.path.is_dir()
        # A worker started by hand on the same run is turned away too.
        second = subprocess.run([sys.executable, "-m", "bvae_tui.engine.runs.worker",
                                 str(run.path), "--resume"], capture_output=True, text=True,
                                timeout=60, env=env)
        assert second.returncode == 3 and f"pid {worker}" in second.stderr
        out = bvae(env, "stop", run.id)
        assert out.returncode == 0, out.stderr
        assert run.status().state == "stopped" and lock_holder(run) is None
        assert not _alive(worker)
        out = bvae(env, "runs", "rm", run.id, "--yes")
        assert out.returncode == 0, out.stderr
        assert not run.path.exists()
    finally:
        holder = lock_holder(run) if run.path.exists() else None
        if holder:
            os.kill(holder, signal.SIGKILL)


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
        time.sleep(0.05)
    return True


EXITING = "import sys, time; from bvae_tui.engine.runs.lock import RunLock; " \
          "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); " \
          "sys.stdin.readline(); time.sleep(1.0)"


def test_resume_waits_for_a_stopped_worker_to_exit_but_not_for_a_training_one(runs_dir,
                                                                               tmp_path):
    from bvae_tui.engine.runs.resume import plan_resume

    run = _stopped_run(runs_dir, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", EXITING, str(run.path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        run.write_status(state="running", pid=proc.pid)  # training: refused at once
        with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
            plan_resume(run)
        # It has written 'stopped' and is exiting (a second later): the resume waits for it.
        run.write_status(state="stopped", pid=proc.pid)
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        plan = plan_resume(run)
        assert proc.poll() is not None  # it got the lock only once the holder was gone
        assert lock_holder(run) == os.getpid()
        plan.lock.release()
    finally:
        proc.kill()
        proc.wait()
