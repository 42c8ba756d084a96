"""The local scheduler with real workers: slots, a killed terminal, kill -9 and resume, and two
sweeps sharing a host's devices. Members train a few steps of a tiny model on dsprites-mini."""

from __future__ import annotations

import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time

import pytest

from bvae_tui.engine.runs.sweeps import control
from bvae_tui.engine.runs.sweeps.spec import ExecutorSettings
from bvae_tui.engine.runs.sweeps.store import find_sweep, list_sweeps
from tests.conftest import bvae_command
from tests.sweep_helpers import (
    freeze,
    kill_everything,
    lifetime,
    member_device,
    most_at_once,
    rows,
    running,
    starts,
    thaw,
    tiny_options,
    tiny_spec,
    wait_for,
)

pytestmark = pytest.mark.slow
FINISH_S = 600  # a loaded 2-core CI machine starts torch slowly


@pytest.fixture(autouse=True)
def _clean_up(runs_dir):
    yield
    kill_everything(runs_dir)


def _bvae(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*bvae_command(), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _run_in_a_terminal(env, command: list[str]) -> None:
    """Run ``command`` in a new terminal session, then kill the terminal (and its shell)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a shell on the new terminal that keeps the session alive
        os.execvpe("bash", ["bash", "-c", f"{shlex.join(command)}; sleep 300"], env)
    seen = b""
    deadline = time.monotonic() + 120
    while b"follow it with" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert b"follow it with" in seen, seen.decode(errors="replace")
    os.close(fd)  # hang up the terminal...
    for sig in (signal.SIGHUP, signal.SIGKILL):  # ...and kill what was left in its session
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
    os.waitpid(pid, 0)


def test_cpu_sweep_two_at_a_time_outlives_its_terminal(runs_dir, env):
    """`bvae sweep ... --device cpu --slots 2`: 4 members, never more than 2 at once, each
    started once, and the sweep does not care that its terminal is gone."""
    _run_in_a_terminal(env, [*bvae_command(), "sweep", *tiny_options(12, 4), "--beta", "1,4",
                             "--seed", "1,2", "--device", "cpu", "--slots", "2",
                             "--name", "term"])
    (sweep,) = list_sweeps(runs_dir)
    summary = wait_for(lambda: (s := sweep.summary()).state != "running" and s, FINISH_S,
                       "the sweep to end")
    assert (summary.state, summary.finished) == ("finished", 4), summary
    members = sweep.members()
    assert 1 <= most_at_once([lifetime(run) for run in members]) <= 2
    for run in members:
        assert rows(run) == [4, 8, 12]
        assert starts(run) == (1, 0)
    assert [m.config.beta for m in members] == [1.0, 1.0, 4.0, 4.0]


def test_kill9_scheduler_then_resume_adopts_and_never_trains_twice(runs_dir, env):
    result = _bvae(env, "sweep", *tiny_options(200, 20), "--seed", "1..4", "--device", "cpu",
                   "--slots", "2", "--name", "crash")
    assert result.returncode == 0, result.stderr
    sweep = find_sweep(runs_dir, "crash")
    members = sweep.members()
    first, second = members[:2]  # the grid's first two are started first
    # Freeze each as soon as it is past a checkpoint: neither can finish before the crash.
    frozen = [freeze(r) for r in (first, second)
              if wait_for(lambda r=r: running(r, past_checkpoint=True), FINISH_S,
                          f"{r.id} past a checkpoint", every=0.05)]
    survivor, victim = first, second
    os.kill(sweep.scheduler().pid, signal.SIGKILL)
    os.kill(victim.status().pid, signal.SIGKILL)
    wait_for(lambda: victim.status().state == "lost" and not sweep.scheduler_alive(), 30,
             "the victim to read lost")
    assert sweep.summary().state == "lost"

    result = _bvae(env, "sweep", "resume", "crash")
    assert result.returncode == 0, result.stderr
    assert "1 member(s) queued again" in result.stdout
    thaw(frozen[0])  # the survivor trains on, adopted by the new scheduler
    # One scheduler per sweep: a second resume and a second scheduler both refuse in a line.
    again = _bvae(env, "sweep", "resume", "crash")
    assert again.returncode == 1 and again.stderr.strip().startswith("error: sweep ")
    assert "is running" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    second_scheduler = subprocess.run(
        [sys.executable, "-m", "bvae_tui.engine.runs.sweeps.scheduler", str(sweep.path)],
        env=env, capture_output=True, text=True, timeout=60)
    assert second_scheduler.returncode == 3
    assert "already has a scheduler" in second_scheduler.stderr

    summary = wait_for(lambda: (s := sweep.summary()).state != "running" and s, FINISH_S,
                       "the resumed sweep to end")
    assert (summary.state, summary.finished) == ("finished", 4), summary
    for run in members:
        assert rows(run) == list(range(20, 201, 20)), run.id  # strictly increasing, complete
    assert starts(victim) == (1, 1)  # resumed from its checkpoint, once
    for run in members:
        if run is not victim:
            assert starts(run) == (1, 0), run.id  # the survivor was adopted, not restarted
    log = sweep.log_path.read_text()
    assert f"adopted {survivor.id}" in log
    assert f"queued again: {victim.id}" in log and "resuming)" in log.split(victim.id)[-1]


def test_two_sweeps_never_share_a_device_slot(runs_dir, env_data):
    """Two sweeps on stand-in devices fake:0 and fake:1, one run per device: their schedulers
    share the host's slot table, so no device ever has two members at once."""
    fake = ["fake:0", "fake:1"]
    spec = tiny_spec(8, 4, ExecutorSettings(slots=1), device="cpu", seed="1,2")
    first, _ = control.create(spec, poll=0.2, devices=fake)
    second, _ = control.create(spec, poll=0.2, devices=fake)
    for sweep in (first, second):
        wait_for(lambda s=sweep: s.summary().state == "finished", FINISH_S, f"{sweep.id}")
    by_device: dict[str, list[tuple[float, float]]] = {d: [] for d in fake}
    for sweep in (first, second):
        for run in sweep.members():
            by_device[member_device(sweep, run)].append(lifetime(run))
            assert run.status().state == "finished" and starts(run) == (1, 0)
    for device, intervals in by_device.items():
        assert intervals and most_at_once(intervals) == 1, device
    assert len(by_device["fake:0"]) + len(by_device["fake:1"]) == 4


def test_a_member_whose_worker_dies_is_reported_and_the_sweep_goes_on(runs_dir, env_data):
    from typer.testing import CliRunner

    from bvae_tui.cli.main import app

    spec = tiny_spec(40, 4, ExecutorSettings(slots=1), device="cpu", seed="1,2")
    sweep, _ = control.create(spec, poll=0.2)
    first, second = sweep.members()
    wait_for(lambda: running(first), FINISH_S, "the first member to train", every=0.05)
    os.kill(freeze(first), signal.SIGKILL)  # as the kernel's OOM killer would
    summary = wait_for(lambda: (s := sweep.summary()).state != "running" and s, FINISH_S,
                       "the sweep to end")
    assert (summary.state, summary.finished, summary.failed) == ("finished", 1, 1), summary
    assert "died with signal SIGKILL" in first.status().error
    assert rows(second) == list(range(4, 41, 4))
    shown = CliRunner().invoke(app, ["sweep", "show", sweep.id])
    assert shown.exit_code == 0 and "died with signal SIGKILL" in shown.output
