"""The Slurm executor end to end through submitit's real Slurm code path, against a fake Slurm
(tests/fake_slurm.py: sbatch, srun, scancel, scontrol and sacct that run the jobs here)."""

from __future__ import annotations

import subprocess

import pytest

from bvae_tui.engine.runs.sweeps.store import find_sweep
from tests import fake_slurm
from tests.conftest import bvae_command
from tests.sweep_helpers import (
    freeze,
    kill_everything,
    most_at_once,
    rows,
    running,
    starts,
    thaw,
    tiny_options,
    wait_for,
)

pytest.importorskip("submitit")
pytestmark = pytest.mark.slow
FINISH_S = 600


@pytest.fixture
def slurm(tmp_path, runs_dir, env, monkeypatch):
    """An environment whose PATH finds the fake Slurm first."""
    extra = fake_slurm.install(tmp_path / "bin", tmp_path / "slurm")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    yield {**env, **extra}
    fake_slurm.stop_controllers(tmp_path / "slurm")
    kill_everything(runs_dir)


def _bvae(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*bvae_command(), *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _task_intervals() -> list[tuple[float, float]]:
    """When each run of each array task started and ended, from the fake Slurm's events."""
    open_at: dict[str, float] = {}
    out = []
    for event in fake_slurm.events():
        if event["event"] == "start":
            open_at[event["job"]] = event["time"]
        elif event["event"] == "end":
            out.append((open_at.pop(event["job"]), event["time"]))
    return out


def _continued(iters: list[int], total: int, every: int) -> None:
    """Rows strictly increasing to the end, every log step there (a stop adds the row of the
    partial interval it stopped in)."""
    assert iters == sorted(set(iters)) and iters[-1] == total, iters
    assert set(range(every, total + 1, every)) <= set(iters), iters


def test_slurm_array_with_cancel_requeue_and_resume(runs_dir, slurm):
    from submitit.slurm.slurm import SlurmJob

    # Three members: a requeued one (200 steps), a cancelled one (it would train for ages) and
    # one that waits for a free place in the array (40 steps).
    result = _bvae(slurm, "sweep", "--executor", "slurm", *tiny_options("200,100000,40", 20),
                   "--array-parallelism", "2", "--partition", "debug", "--time", "30",
                   "--slurm-arg", "account=me", "--name", "cluster")
    assert result.returncode == 0, result.stderr
    assert "looks local to this machine" in result.stderr  # the test's runs dir is under /tmp
    sweep = find_sweep(runs_dir, "cluster")
    a, b, c = sweep.members()
    (submit,) = [e for e in fake_slurm.events() if e["event"] == "submit"]
    options = submit["options"]
    assert (options["array"], options["partition"], options["account"], options["time"]) == \
        ("0-2%2", "debug", "me", "30")
    assert options["signal"].startswith("USR2@")  # submitit's time-limit signal
    array = submit["job"]
    assert sweep.scheduler().jobs == {a.id: f"{array}_0", b.id: f"{array}_1",
                                      c.id: f"{array}_2"}

    # Freeze the two running workers once they train (the long one once it has logged a row,
    # so that its stop below has progress to keep): neither can end by itself now.
    frozen = [freeze(r) for r, logged in ((a, False), (b, True))
              if wait_for(lambda r=r, logged=logged: running(r) and (rows(r) or not logged),
                          FINISH_S, f"{r.id} to train", every=0.05)]
    assert c.status().state == "queued" and c.raw_status().job == f"{array}_2"  # parallelism 2
    assert a.raw_status().job == f"{array}_0"
    # The time-limit signal (what Slurm sends --signal's delay before the limit): submitit calls
    # the member's checkpoint hook, which stops the worker, and requeues the job.
    SlurmJob(folder=sweep.slurm_dir, job_id=f"{array}_0")._interrupt(timeout=True)
    # bvae stop on a Slurm member cancels its job; the worker checkpoints.
    stopped = _bvae(slurm, "stop", b.id, "--wait", "0")
    assert stopped.returncode == 0, stopped.stderr
    for pid in frozen:
        thaw(pid)
    wait_for(lambda: b.status().state == "stopped", 120, "the cancelled member to stop")
    wait_for(lambda: a.status().state == "finished" and c.status().state == "finished",
             FINISH_S, "the requeued member and the last one to finish")

    assert any(e["event"] == "requeue" and e["job"] == f"{array}_0"
               for e in fake_slurm.events())
    _continued(rows(a), 200, 20)  # after the requeue, without duplicates
    assert starts(a) == (1, 1)
    assert most_at_once(_task_intervals()) <= 2
    stopped_at = b.status().iteration
    assert stopped_at and b.last_checkpoint.exists()

    # Resume submits the stopped member again; it continues from its checkpoint...
    resumed = _bvae(slurm, "sweep", "resume", "cluster")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 member(s) queued again" in resumed.stdout
    wait_for(lambda: running(b) and (b.status().iteration or 0) > stopped_at, FINISH_S,
             "the resumed member to train on")
    # ...until the whole sweep is stopped: its jobs are cancelled, the worker checkpoints.
    halted = _bvae(slurm, "sweep", "stop", "cluster")
    assert halted.returncode == 0, halted.stderr
    wait_for(lambda: b.status().state == "stopped", 120, "the sweep to stop")
    iters = rows(b)
    assert iters == sorted(set(iters)) and iters[-1] > stopped_at
    assert starts(b) == (1, 1)
    summary = sweep.summary()
    assert (summary.state, summary.finished, summary.stopped) == ("stopped", 2, 1)


def test_the_time_limit_signal_never_comes_before_half_the_limit():
    """slurmctld signals up to its 30 s check interval before the delay asked; with 1 minute
    and 30 s it signalled in the first second of the job (CI), so no step ever trained."""
    from bvae_tui.engine.runs.sweeps.slurm import (
        CHECKPOINT_S,
        SIGNAL_DELAY_S,
        SLURM_CHECK_S,
        signal_delay,
    )

    assert [signal_delay(m) for m in (1, 2, 3, 5, 60)] == [10, 30, 60, 120, 120]
    for minutes in range(1, 24 * 60 + 1):
        delay, limit = signal_delay(minutes), minutes * 60
        assert CHECKPOINT_S <= delay <= SIGNAL_DELAY_S
        earliest = limit - delay - SLURM_CHECK_S  # seconds into the job, at the earliest
        assert earliest >= min(limit // 2, limit - CHECKPOINT_S - SLURM_CHECK_S)
