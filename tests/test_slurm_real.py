"""The Slurm executor on a real one-node Slurm cluster (Debian's slurm-wlm 22.05, started by
tests/slurm_fixtures.py): what tests/fake_slurm.py cannot vouch for, because it only agrees with
our own reading of Slurm.

Slurm holds a requeued job (PENDING, reason BeginTime) for the credential lifetime before it
may start again: the node refuses the job id until its revoked credential expires, and a job
started sooner fails at launch ("Job credential revoked"). The test cluster sets that lifetime
to 10 s (tests/slurm_cluster.py, CRED_EXPIRE_S) instead of Slurm's 120, and the tests wait for
Slurm to start requeued jobs by itself, as `bvae sweep resume` does.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from bvae_tui.engine.runs.sweeps.store import find_sweep
from tests.conftest import bvae_command
from tests.sweep_helpers import freeze, rows, running, starts, thaw, tiny_options, wait_for
from tests.tui_helpers import screen_lines
from tests.tui_helpers import wait_for as wait_in_app

pytestmark = pytest.mark.slow
FINISH_S = 300


def _bvae(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*bvae_command(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _sweep(env, iterations: str, every: int, *extra: str) -> subprocess.CompletedProcess:
    result = _bvae(env, "sweep", "--executor", "slurm", *tiny_options(iterations, every),
                   *extra)
    assert result.returncode == 0, result.stderr
    return result


def _continued(iters: list[int], total: int, every: int) -> None:
    """Rows strictly increasing to ``total`` with every log step there: nothing duplicated
    or missing across stops, requeues and resumes (a stop adds the row of its partial
    interval)."""
    assert iters == sorted(set(iters)) and iters[-1] == total, iters
    assert set(range(every, total + 1, every)) <= set(iters), iters


def _squeue(cluster) -> dict[str, str]:
    """Job id (``12_3``) -> state and reason, as squeue lists them."""
    out = cluster.run("squeue", "-h", "--array", "-o", "%i|%T|%r").stdout
    return {job: f"{state} {reason}" for job, state, reason in
            (line.split("|") for line in out.splitlines())}


async def _sweep_screen_text(runs_dir, data_dir, sweep, wanted: str) -> str:
    """The TUI's sweep screen on ``sweep`` once its queue panel shows ``wanted``."""
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.sweep import SweepScreen

    app = BvaeApp(runs_dir, data_dir)
    async with app.run_test(size=(100, 32)) as pilot:
        app.open_sweep(sweep.path)
        await wait_in_app(pilot, lambda: isinstance(app.screen, SweepScreen), 20, "the sweep")
        return await wait_in_app(pilot, lambda: (t := "\n".join(screen_lines(app)))
                                 and wanted in t and t, 20, f"{wanted!r} on the sweep screen")


def test_real_array_runs_to_finished_and_shows_pending_states(runs_dir, env_data, slurm_env,
                                                              real_slurm):
    """A 2x2 sweep with --array-parallelism 2: two tasks wait (PENDING, JobArrayTaskLimit) and
    `bvae sweeps` and `bvae sweep show` say so; all four finish, each with its array task id
    (``A_i``) in status.json, complete metrics rows and Slurm's log under %A_%a."""
    _sweep(slurm_env, "300", 20, "--beta", "1,4", "--seed", "1,2", "--array-parallelism", "2",
           "--name", "grid")
    sweep = find_sweep(runs_dir, "grid")
    members = sweep.members()
    jobs = sweep.scheduler().jobs
    array = jobs[members[0].id].split("_")[0]
    assert [jobs[r.id] for r in members] == [f"{array}_{i}" for i in range(4)]

    def held_back():
        states = _squeue(real_slurm)
        return sum(s.startswith("PENDING JobArrayTaskLimit") for s in states.values()) == 2
    # The first two tasks run; frozen, they cannot finish (and let the other two start) while
    # the CLI and the TUI are asked what Slurm says of the waiting ones, however fast or slow
    # this machine is.
    frozen = [freeze(r) for r in members[:2]
              if wait_for(lambda r=r: running(r), FINISH_S, f"{r.id} to start", every=0.05)]
    try:
        wait_for(held_back, 60, "two array tasks held back by the parallelism")
        screen = asyncio.run(_sweep_screen_text(runs_dir, env_data, sweep, "JobArrayTaskLimit"))
        listed = _bvae(slurm_env, "sweeps")
        shown = _bvae(slurm_env, "sweep", "show", "grid")
        as_json = _bvae(slurm_env, "sweep", "show", "grid", "--json")
    finally:
        for pid in frozen:
            thaw(pid)
    assert "PENDING (JobArrayTaskLimit)" in screen
    assert "PENDING (JobArrayTaskLimit)" in listed.stdout, listed.stdout
    assert shown.stdout.count("PENDING (JobArrayTaskLimit)") >= 1, shown.stdout
    assert '"slurm_state": "PENDING (JobArrayTaskLimit)"' in as_json.stdout

    wait_for(lambda: all(r.status().state == "finished" for r in members), FINISH_S,
             "the four members to finish")
    for i, run in enumerate(members):
        assert run.raw_status().job == f"{array}_{i}"
        assert rows(run) == list(range(20, 301, 20))
        assert (sweep.slurm_dir / f"{array}_{i}_0_log.out").exists()

    def sacct() -> list[str]:  # a job ends a moment after its member reads finished
        return sorted(real_slurm.run("sacct", "-n", "-X", "--parsable2", "-o", "JobID,State",
                                     "-j", array).stdout.split())
    wait_for(lambda: sacct() == [f"{array}_{i}|COMPLETED" for i in range(4)], 60,
             "sacct to say the four jobs COMPLETED")
    assert sweep.summary().state == "finished"


def test_real_stop_resume_and_scontrol_requeue(runs_dir, slurm_env, real_slurm):
    """`bvae stop` cancels one member's job (it checkpoints on Slurm's SIGTERM and reads
    stopped) and `bvae sweep resume` continues it; `scontrol requeue` of the other (what a
    preemption does) sends the same SIGTERM, but that member stays queued on its job, which
    Slurm starts again: both finish with every row once."""
    _sweep(slurm_env, "300", 20, "--seed", "1,2", "--array-parallelism", "2", "--name", "sr")
    sweep = find_sweep(runs_dir, "sr")
    requeued, stopped = sweep.members()
    frozen = [freeze(r) for r in (requeued, stopped)
              if wait_for(lambda r=r: running(r, past_checkpoint=True) and rows(r), FINISH_S,
                          f"{r.id} to train past a checkpoint", every=0.05)]
    job = requeued.raw_status().job
    real_slurm.run("scontrol", "requeue", job)
    result = _bvae(slurm_env, "stop", stopped.id, "--wait", "0")
    assert result.returncode == 0, result.stderr
    for pid in frozen:  # Slurm sends SIGCONT before SIGTERM anyway
        thaw(pid)
    wait_for(lambda: stopped.status().state == "stopped", 60, "the cancelled member to stop")
    wait_for(lambda: requeued.raw_status().phase == "requeued by Slurm (scontrol requeue or "
             "preemption)", 60, "the requeued member to wait for its job again")
    assert requeued.status().state == "queued"  # not stopped: its job comes back
    assert stopped.last_checkpoint.exists() and 0 < stopped.status().iteration < 300

    resumed = _bvae(slurm_env, "sweep", "resume", "sr")
    assert resumed.returncode == 0, (resumed.stderr, requeued.raw_status(), stopped.raw_status(),
                                     _squeue(real_slurm))
    assert "1 member(s) queued again" in resumed.stdout  # only the stopped one: one job each
    wait_for(lambda: all(r.status().state == "finished" for r in (requeued, stopped)),
             FINISH_S, "both members to finish")
    for run in (requeued, stopped):
        _continued(rows(run), 300, 20)
        assert starts(run) == (1, 1)
    assert requeued.raw_status().job == job  # the same job, started again
    assert stopped.raw_status().job.split("_")[0] != job.split("_")[0]  # a new submission


def test_real_time_limit_signals_checkpoints_and_requeues(runs_dir, slurm_env, real_slurm):
    """A two-minute --time: Slurm signals the job before the limit (submitit's USR2, never
    before half the limit: see signal_delay), the member checkpoints, submitit requeues the
    job, and it continues from the checkpoint; the job never reaches TIMEOUT. (With one minute
    and a 30 s delay Slurm signalled at its first check, once 0.4 s after the start, before a
    single step: what signal_delay now prevents.)"""
    _sweep(slurm_env, "1000000", 20, "--seed", "1,2", "--time", "2", "--array-parallelism",
           "1", "--name", "limit")
    sweep = find_sweep(runs_dir, "limit")
    run, _ = sweep.members()  # the second waits its turn all along
    script = next(sweep.slurm_dir.glob("*.sh")).read_text()
    assert "#SBATCH --signal=USR2@30" in script and "#SBATCH --time=2" in script
    job = wait_for(lambda: run.raw_status().job, 60, "the job id")
    wait_for(lambda: run.raw_status().phase == "requeued by Slurm (time limit or preemption)",
             240, "the time-limit signal and the requeue")
    checkpointed = run.status().iteration
    assert checkpointed and run.last_checkpoint.exists()
    log = (sweep.slurm_dir / f"{job}_0_log.out").read_text()
    assert "this job is timed-out" in log and f"Requeued job {job}" in log
    wait_for(lambda: running(run) and (run.status().iteration or 0) > checkpointed + 20,
             FINISH_S, "the requeued job to train on from its checkpoint")
    halted = _bvae(slurm_env, "sweep", "stop", "limit")
    assert halted.returncode == 0, halted.stderr
    wait_for(lambda: run.status().state == "stopped", 60, "the member to stop")
    iters = rows(run)
    assert iters == sorted(set(iters)) and iters[-1] > checkpointed, iters
    assert starts(run) == (1, 1)
    states = real_slurm.run("sacct", "-n", "-X", "--parsable2", "-o", "State", "-j",
                            job.split("_")[0]).stdout
    assert "TIMEOUT" not in states, states


def test_real_node_failure_then_resume(runs_dir, slurm_env, real_slurm):
    """slurmd killed with SIGKILL while both members run: the node goes down, Slurm requeues
    the jobs, and when slurmd comes back it kills the orphaned workers; the members read lost
    (never running for ever), and `bvae sweep resume` waits for the requeued jobs (no second
    submission), which bring them to finished."""
    _sweep(slurm_env, "300", 20, "--seed", "1,2", "--array-parallelism", "2", "--name", "node")
    sweep = find_sweep(runs_dir, "node")
    members = sweep.members()
    frozen = [freeze(r) for r in members
              if wait_for(lambda r=r: running(r, past_checkpoint=True), FINISH_S,
                          f"{r.id} to train past a checkpoint", every=0.05)]
    jobs = [r.raw_status().job for r in members]
    try:
        real_slurm.kill_slurmd()
        real_slurm.wait_node("down", timeout=90)
        wait_for(lambda: all(_squeue(real_slurm).get(j, "").startswith("PENDING")
                             for j in jobs), 60, "Slurm to requeue the jobs")
    finally:
        real_slurm.start_slurmd()
    real_slurm.wait_node("idle", timeout=90)
    for pid in frozen:
        thaw(pid)
    # slurmd back kills the orphans: SIGKILL (lost) or, if they get to it, SIGTERM (stopped)
    wait_for(lambda: all(r.status().state in ("lost", "stopped") for r in members), 60,
             "the members of the failed node to read lost")
    assert sweep.summary().state in ("lost", "stopped")

    resumed = _bvae(slurm_env, "sweep", "resume", "node")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 member(s) queued again" in resumed.stdout
    assert "wait for the jobs Slurm requeued" in sweep.log_path.read_text()
    wait_for(lambda: all(r.status().state == "finished" for r in members), FINISH_S,
             "the requeued members to finish")
    for run, job in zip(members, jobs, strict=True):
        _continued(rows(run), 300, 20)
        assert run.raw_status().job == job  # Slurm's own requeue, not a second submission
    assert sweep.scheduler().jobs == dict(zip([r.id for r in members], jobs, strict=True))


@pytest.mark.parametrize(("option", "slurm_says", "fix"), [
    (["--partition", "nope"], '"invalid partition specified: nope"', "sinfo -s"),
    (["--gpus-per-node", "1"], '"Invalid generic resource (gres) specification"',
     "no GPUs"),
    (["--mem", "999999G"], '"Memory specification can not be satisfied"', "--mem"),
])
def test_real_sbatch_refusals_are_one_line(runs_dir, slurm_env, real_slurm, option,
                                           slurm_says, fix):
    """What real sbatch refuses: one line quoting Slurm with the fix, exit 1, nothing
    submitted, no member or sweep left behind."""
    result = _bvae(slurm_env, "sweep", "--executor", "slurm", *tiny_options("40", 20),
                   "--seed", "1,2", *option, "--name", "bad")
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: sbatch refused the sweep: ") and slurm_says in errors[0]
    assert fix in errors[0] and "nothing was submitted" in errors[0]
    assert not [p for p in runs_dir.iterdir() if p.name != "sweeps"]
    assert not list((runs_dir / "sweeps").glob("*bad*"))
    assert real_slurm.run("squeue", "-h").stdout == ""


def test_real_time_in_a_wrong_format_is_refused_before_sbatch(runs_dir, slurm_env):
    result = _bvae(slurm_env, "sweep", "--executor", "slurm", *tiny_options("40", 20),
                   "--seed", "1,2", "--time", "1:xx", "--name", "bad")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --time '1:xx' is not a time limit; give minutes (90) or H:MM:SS (1:30:00) or "
        "D-HH:MM:SS"]
    assert not list(runs_dir.iterdir())


def test_real_cluster_without_accounting(runs_dir, slurm_env, real_slurm):
    """The same kind of array on a cluster without slurmdbd: sacct fails there, and resuming
    still finds the job that ended (cancelled outside bvae before it started) through squeue,
    says once in scheduler.log that accounting is off, and loses nothing."""
    real_slurm.set_accounting(False)
    try:
        assert real_slurm.run("sacct", "-n", check=False).returncode != 0
        _sweep(slurm_env, "40", 20, "--seed", "1,2", "--array-parallelism", "1", "--name",
               "noacct")
        sweep = find_sweep(runs_dir, "noacct")
        first, second = sweep.members()
        second_job = sweep.scheduler().jobs[second.id]
        wait_for(lambda: _squeue(real_slurm).get(second_job, "").startswith("PENDING"), 60,
                 "the second task to wait")
        real_slurm.run("scancel", second_job)  # ended, by someone else, before it started
        wait_for(lambda: first.status().state == "finished", FINISH_S, "the first to finish")
        assert second.status().state == "queued"  # nothing told the member yet

        resumed = _bvae(slurm_env, "sweep", "resume", "noacct")
        assert resumed.returncode == 0, resumed.stderr
        assert "1 member(s) queued again" in resumed.stdout
        wait_for(lambda: second.status().state == "finished", FINISH_S, "the second to finish")
        again = _bvae(slurm_env, "sweep", "resume", "noacct")
        assert again.returncode == 1 and "has no member to resume" in again.stderr
        assert rows(first) == rows(second) == [20, 40]
        log = sweep.log_path.read_text()
        assert log.count("Slurm accounting is off") == 1, log
        assert sweep.summary().state == "finished"
    finally:
        real_slurm.set_accounting(True)
