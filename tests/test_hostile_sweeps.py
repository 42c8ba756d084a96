"""Sweeps against hostile input and hostile neighbours: Slurm options that try to add shell lines
to the sbatch script, and lock files that someone else holds (or swapped for a symlink)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.errors import SweepError
from bvae_tui.engine.runs.sweeps import control, flock, scheduler, slurm
from bvae_tui.engine.runs.sweeps.flock import try_lock
from bvae_tui.engine.runs.sweeps.members import unqueue
from bvae_tui.engine.runs.sweeps.records import QUEUE_LOCK
from bvae_tui.engine.runs.sweeps.slots import SlotTable
from bvae_tui.engine.runs.sweeps.store import find_sweep, list_sweeps
from tests.sweep_helpers import kill_everything, wait_for

MINI = ["--dataset", "dsprites-mini", "--iterations", "20", "--z-dim", "4", "--batch-size", "8",
        "--seed", "1,2"]
JOIN_S = 30.0  # a call that should return at once, joined generously (a loaded CI machine)


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _nothing_created(runs_dir: Path) -> None:
    sweeps = runs_dir / "sweeps"
    assert not sweeps.exists() or not list(sweeps.iterdir())
    assert [p.name for p in runs_dir.iterdir() if p.name != "sweeps"] == []


# --------------------------------------------------------------------------------------------
# Item 4: Slurm options are checked before anything is submitted or created


@pytest.fixture
def fake_submit(monkeypatch):
    """A Slurm executor that needs no cluster: the check passes, a submit records the sweep and
    the sbatch script submitit would write for it (nothing is run)."""
    pytest.importorskip("submitit")
    from submitit.slurm.slurm import _make_sbatch_string

    submitted: list[dict] = []

    def submit(sweep, runs):
        params = slurm._parameters(sweep)
        script = _make_sbatch_string(command="true", folder=sweep.slurm_dir, **params)
        submitted.append({"sweep": sweep, "params": params, "script": script})
        return {run.id: f"1000_{i}" for i, run in enumerate(runs)}

    monkeypatch.setattr(control.slurm, "check", lambda settings: None)
    monkeypatch.setattr(control.slurm, "submit", submit)
    return submitted


@pytest.mark.parametrize("toml,needles", [
    ('[executor.slurm]\nargs = {"x\\nrm -rf ~" = "1"}\n', ["'x\\nrm -rf ~'", "sbatch option"]),
    ('[executor.slurm]\nargs = {account = "me\\nrm -rf ~"}\n', ["account", "control character"]),
    ('[executor.slurm]\npartition = "gpu\\nrm -rf ~"\n', ["partition", "control character"]),
    ('[executor.slurm]\nmem = "16G\\n"\n', ["--mem", "not a memory size"]),
    ('[executor.slurm]\ntime = "30\\n"\n', ["--time", "control character"]),
    ('name = "grid\\nrm -rf ~"\n', ["name", "control character"]),
])
def test_spec_file_slurm_values_with_control_characters_are_refused(
        runs_dir, env_data, tmp_path, fake_submit, toml, needles):
    spec = tmp_path / "spec.toml"
    spec.write_text('[executor]\nkind = "slurm"\n' + toml if toml.startswith("[") else
                    toml + '[executor]\nkind = "slurm"\n')
    line = _one_line_error(_cli("sweep", *MINI, "--spec", str(spec)), str(spec), *needles)
    assert "\n" not in line
    assert fake_submit == []
    _nothing_created(runs_dir)


@pytest.mark.parametrize("option,needles", [
    (["--slurm-arg", "x\nrm -rf ~=1"], ["'x\\nrm -rf ~'", "sbatch option"]),
    (["--slurm-arg", "account=me\nrm -rf ~"], ["account", "control character"]),
    (["--slurm-arg", "Account=me"], ["'Account'", "sbatch option"]),
    (["--partition", "gpu\nrm -rf ~"], ["partition", "control character"]),
    (["--mem", "16G\n"], ["--mem", "not a memory size"]),
    (["--name", "grid\nrm -rf ~"], ["name", "control character"]),
])
def test_cli_slurm_values_with_control_characters_are_refused(runs_dir, env_data, fake_submit,
                                                               option, needles):
    result = _cli("sweep", *MINI, "--executor", "slurm", *option)
    _one_line_error(result, *needles)
    assert fake_submit == []
    _nothing_created(runs_dir)


def test_a_local_sweep_name_with_a_newline_is_refused(runs_dir, env_data, monkeypatch):
    started = []
    monkeypatch.setattr(control.local, "start_scheduler", lambda s, poll=None: started.append(s))
    _one_line_error(_cli("sweep", *MINI, "--device", "cpu", "--name", "a\nb"), "name",
                    "control character")
    assert started == []
    _nothing_created(runs_dir)


def test_valid_slurm_options_still_reach_submitit(runs_dir, env_data, tmp_path, fake_submit):
    spec = tmp_path / "spec.toml"
    spec.write_text('[executor]\nkind = "slurm"\n[executor.slurm]\npartition = "gpu"\n'
                    'args = { account = "my project", cpus_per_task = 2 }\n')
    result = _cli("sweep", *MINI, "--spec", str(spec), "--slurm-arg=--qos=high",
                  "--slurm-arg", "constraint=a100|h100", "--name", "grid one")
    assert result.exit_code == 0, result.output
    (done,) = fake_submit
    assert done["params"]["additional_parameters"] == {
        "account": "my project", "cpus-per-task": "2", "qos": "high", "constraint": "a100|h100"}
    assert done["params"]["partition"] == "gpu"
    lines = done["script"].splitlines()
    for expected in ("#SBATCH --account='my project'", "#SBATCH --cpus-per-task=2",
                     "#SBATCH --qos=high", "#SBATCH --constraint='a100|h100'",
                     "#SBATCH --partition=gpu", "#SBATCH --job-name='bvae-grid one'"):
        assert expected in lines, done["script"]


def test_a_hand_edited_sweep_json_cannot_add_lines_at_resume(runs_dir, env_data, fake_submit):
    """Resume submits from sweep.json: its options are checked again there."""
    import json

    assert _cli("sweep", *MINI, "--executor", "slurm", "--name", "edited").exit_code == 0
    sweep = find_sweep(runs_dir, "edited")
    data = json.loads(sweep.record_path.read_text())
    data["slurm"]["args"] = {"account\ntouch /tmp/pwned": "x"}
    sweep.record_path.write_text(json.dumps(data))
    with pytest.raises(SweepError, match="sbatch option") as caught:
        slurm._parameters(sweep)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Item 7: lock waits end, and keep honouring stop requests

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True)\n"
        "time.sleep(300)\n")


@pytest.fixture
def hold():
    """Take a shared flock on a file from another process (what any reader of it can do);
    released when the test ends."""
    procs: list[subprocess.Popen] = []

    def take(path: Path) -> subprocess.Popen:
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield take
    for proc in procs:
        proc.kill()
        proc.wait()


def _in_thread(call) -> tuple[threading.Thread, dict]:
    """Run ``call`` in a daemon thread; what it returned or raised lands in the dict."""
    out: dict = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _proc_locks_lists(pid: int) -> bool:
    try:
        with open("/proc/locks") as fh:
            return any(line.split()[4:5] == [str(pid)] for line in fh if "->" not in line)
    except OSError:
        return False


def test_a_slot_claim_returns_when_a_reader_holds_the_table(tmp_path, hold, monkeypatch):
    monkeypatch.setattr(flock, "LOCK_WAIT_S", 0.5, raising=False)
    table = SlotTable(tmp_path, host="box")
    holder = hold(table.lock_path)

    def claim():
        with table.claim():
            return "claimed"

    thread, out = _in_thread(claim)
    thread.join(JOIN_S)
    assert not thread.is_alive(), "the slot claim waited without end"
    error = out.get("error")
    assert isinstance(error, SweepError), out
    message = str(error)
    assert "\n" not in message and str(table.lock_path) in message
    assert pwd.getpwuid(os.getuid()).pw_name in message  # whose process (or file) it is
    if _proc_locks_lists(holder.pid):
        assert f"pid {holder.pid}" in message


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    table = SlotTable(tmp_path, host="box")
    table.folder.mkdir(parents=True)
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    table.lock_path.symlink_to(target)
    with pytest.raises(SweepError, match="symbolic link"), table.claim():
        pass
    with pytest.raises(SweepError, match="symbolic link"):
        try_lock(table.lock_path)
    assert not target.exists()  # nothing was created through the link


def _queued_sweep(name: str, monkeypatch):
    """A local CPU sweep of two queued members whose scheduler was not started."""
    with monkeypatch.context() as m:
        m.setattr(control.local, "start_scheduler", lambda s, poll=None: 0)
        result = _cli("sweep", *MINI, "--device", "cpu", "--name", name)
    assert result.exit_code == 0, result.output
    (sweep,) = list_sweeps(Path(os.environ["BVAE_RUNS_DIR"]))
    return sweep


def test_a_scheduler_waiting_for_the_slot_table_frees_the_queue_and_stops(
        runs_dir, env_data, hold, monkeypatch):
    sweep = _queued_sweep("wedged", monkeypatch)
    table = SlotTable(runs_dir)
    hold(table.lock_path)
    monkeypatch.setattr(scheduler, "CLAIM_WAIT_S", 0.2, raising=False)
    thread, out = _in_thread(scheduler.Scheduler(sweep, poll=0.05).run)
    try:
        # It says in its log why members wait...
        def said() -> bool:
            log = sweep.log_path
            return log.exists() and f"{table.lock_path} is held by" in log.read_text()

        wait_for(said, JOIN_S, "the scheduler to say that the slot table is held")

        # ...the queue stays free for stop and resume meanwhile...
        def queue_free() -> bool:
            fd = try_lock(sweep.path / QUEUE_LOCK)
            if fd is None:
                return False
            os.close(fd)
            return True

        wait_for(queue_free, JOIN_S, "the queue lock to be free while the table is held")
        # ...and a stop request ends the wait.
        sweep.write_scheduler(stop_requested=True)
        thread.join(JOIN_S)
        assert not thread.is_alive(), "the scheduler kept waiting for the slot table"
        assert out == {"value": "stopped"}
        assert all(unqueue(run) for run in sweep.members())
    finally:
        sweep.write_scheduler(stop_requested=True)  # the old code must not start members
        thread.join(0)


def test_sweep_stop_returns_with_one_line_when_the_queue_is_held(runs_dir, env_data, hold,
                                                                 monkeypatch):
    sweep = _queued_sweep("held", monkeypatch)
    monkeypatch.setattr(flock, "LOCK_WAIT_S", 0.5, raising=False)
    hold(sweep.path / QUEUE_LOCK)
    thread, out = _in_thread(lambda: _cli("sweep", "stop", "held", "--wait", "0"))
    thread.join(JOIN_S)
    assert not thread.is_alive(), "bvae sweep stop waited for the queue lock without end"
    _one_line_error(out["value"], "queue.lock", "held by", pwd.getpwuid(os.getuid()).pw_name)
    assert [run.status().state for run in sweep.members()] == ["queued", "queued"]


def test_sweep_stop_ends_a_scheduler_wedged_on_the_slot_table(runs_dir, env_data, hold,
                                                              monkeypatch):
    """The whole story with a real scheduler process: someone holds the host's slot table, the
    scheduler waits for it; `bvae sweep stop` still stops the sweep."""
    hold(SlotTable(runs_dir).lock_path)
    try:
        result = _cli("sweep", *MINI, "--device", "cpu", "--name", "stuck")
        assert result.exit_code == 0, result.output
        sweep = find_sweep(runs_dir, "stuck")
        wait_for(lambda: sweep.scheduler().state == "running", JOIN_S, "the scheduler to run")
        thread, out = _in_thread(lambda: _cli("sweep", "stop", "stuck", "--wait", "0"))
        thread.join(JOIN_S * 2)
        assert not thread.is_alive(), "bvae sweep stop hung behind the scheduler"
        assert out["value"].exit_code == 0, out["value"].output
        assert [run.status().state for run in sweep.members()] == ["stopped", "stopped"]
        assert not sweep.scheduler_alive()
    finally:
        kill_everything(runs_dir)


def test_accounting_note_never_opens_a_fifo_log_and_finds_text_across_chunks(tmp_path):
    """The "accounting is off" check looks into scheduler.log: a FIFO there must not block it,
    and the words are found even where they straddle two reads."""
    import os

    from bvae_tui.engine.runs.sweeps import slurm

    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    assert slurm._log_says(fifo, b"Slurm accounting is off") is False  # old read_text hung
    log = tmp_path / "scheduler.log"
    log.write_bytes(b"x" * ((1 << 16) - 5) + b"Slurm accounting is off\n")
    assert slurm._log_says(log, b"Slurm accounting is off") is True
    assert slurm._log_says(log, b"not there") is False
