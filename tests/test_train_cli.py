"""`bvae train / resume / stop / runs / gpus`: bad input is one line and leaves no run behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.config import schema
from bvae_tui.engine.runs import devices
from bvae_tui.engine.runs.store import Run, list_runs
from tests.conftest import bvae_command
from tests.test_devices import fake_nvml

TINY = ["--dataset", "dsprites-mini", "--device", "cpu", "--batch-size", "16", "--z-dim", "3",
        "--preview-every", "0", "--log-every", "10"]


pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def assert_one_line_error(result, fragment):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("args, fragment", [
    (["--beta", "-1"], "--beta must be at least 0"),
    (["--z-dim", "0"], "--z-dim must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "5000"], "larger than dataset 'dsprites-mini' (4608 images)"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--preset", "mnist-H"], "unknown preset 'mnist-H'"),
    (["--objective", "C"], "--objective must be one of H, B"),
    (["--gamma-tc", "10"], "--gamma-tc is used by objective factor, not H"),
    (["--preset", "dsprites-factor", "--beta", "2"],
     "--beta is used by objectives H and tcvae, not factor"),
    (["--objective", "dip-ii", "--gamma", "5"], "--gamma is used by objective B, not dip-ii"),
    (["--objective", "factor", "--gamma-tc", "-1"], "--gamma-tc must be at least 0"),
    (["--objective", "dip-i", "--lambda-od", "-2"], "--lambda-od must be at least 0"),
    (["--objective", "dip-i", "--lambda-d", "-2"], "--lambda-d must be at least 0"),
    (["--objective", "tcvae", "--alpha", "-1"], "--alpha must be at least 0"),
    (["--objective", "tcvae", "--batch-size", "1"],
     "--batch-size must be at least 2 for objective tcvae"),
    (["--gpu", "first"], "--gpu must be a GPU number or auto"),
    (["--dataset", "celeba", "--device", "cpu"], "celeba"),  # data missing: no run, one line
    (["--dataset", "celeba", "--eval-at-end"], "--eval-at-end needs ground-truth factors"),
    (["--dataset", "celeba", "--detach"], "celeba"),  # detached too: checked before launch
    (["--dataset", "folder:/no/such/dir", "--detach"], "/no/such/dir"),
])
def test_bad_options_create_nothing(runs_dir, env_data, args, fragment):
    result = invoke("train", "--dataset", "dsprites-mini", *args)
    assert_one_line_error(result, fragment)
    assert list(runs_dir.iterdir()) == []


def test_gpu_that_does_not_exist(runs_dir, env_data, monkeypatch):
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml([("NVIDIA T4", 1, 2, 0)]))
    assert_one_line_error(invoke("train", *TINY[:2], "--gpu", "7"), "there is no GPU 7")
    assert list(runs_dir.iterdir()) == []


def test_gpu_without_a_driver(runs_dir, env_data, monkeypatch):
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml(driver=False))
    assert_one_line_error(invoke("train", *TINY[:2], "--gpu", "0"),
                          "cannot use GPU 0: no NVIDIA driver")
    assert list(runs_dir.iterdir()) == []


def test_unwritable_runs_dir(tmp_path, env_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(invoke("train", *TINY, "--runs-dir", str(blocker / "runs")),
                          "cannot create runs dir")
    if os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert_one_line_error(invoke("train", *TINY, "--runs-dir", str(locked)),
                              "is not writable")
        assert list(locked.iterdir()) == []


def test_help_has_every_schema_option_in_panels():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    for info in schema():
        assert info.option in result.output
    for panel in ("Objective", "Model", "Optimisation", "Speed", "Run"):
        assert panel in result.output


def test_foreground_train_then_run_commands(runs_dir, env_data):
    result = invoke("train", *TINY, "--iterations", "20", "--name", "fg",
                    "--objective", "B", "--gamma", "10")
    assert result.exit_code == 0, result.output
    assert "finished" in result.output
    (run,) = list_runs(runs_dir)
    assert run.status().state == "finished" and run.config.gamma == 10.0

    listing = invoke("runs", "--json")
    data = json.loads(listing.output)
    assert [r["id"] for r in data] == [run.id] and data[0]["state"] == "finished"
    assert data[0]["iteration"] == 20 and data[0]["loss"] is not None
    assert run.id in invoke("runs").output

    shown = json.loads(invoke("runs", "show", run.id[:10], "--json").output)
    assert shown["config"]["objective"] == "B" and shown["last_metrics"]["iter"] == 20
    assert shown["precision"]["amp"] == "auto" and shown["precision"]["used"] == "off"
    text = invoke("runs", "show", run.id).output
    assert "KL per latent" in text and "precision: float32 (--amp auto: " in text

    assert_one_line_error(invoke("resume", run.id), "already finished")
    assert_one_line_error(invoke("stop", run.id), "is not running (it is finished)")
    assert_one_line_error(invoke("resume", "no-such-run"), "no run 'no-such-run'")
    assert_one_line_error(invoke("stop", "no-such-run"), "no run 'no-such-run'")

    # A corrupt checkpoint is refused before any worker starts.
    run.write_status(state="stopped")
    run.last_checkpoint.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert_one_line_error(invoke("resume", run.id), "is corrupt")
    assert run.status().state == "stopped"
    # --restart trains it again from 0, discarding the damaged checkpoint.
    restarted = invoke("resume", run.id, "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert "training" in restarted.output and "again from iteration 0" in restarted.output
    assert run.status().state == "finished" and run.last_checkpoint.exists()
    # Without a checkpoint a resume starts over too, and says how much it trains again.
    run.write_status(state="stopped")
    reached = run.status().iteration
    run.last_checkpoint.unlink()
    again = invoke("resume", run.id)
    assert again.exit_code == 0, again.output
    assert (f"has no checkpoint: training it again from iteration 0 ({reached} iterations are "
            "retrained)") in again.output
    assert run.status().state == "finished" and run.status().iteration == reached
    assert [r.iter for r in run.metrics()][-1] == reached

    no_answer = invoke("runs", "rm", run.id)  # no input at all: says how to do it
    assert no_answer.exit_code == 1 and "--yes" in no_answer.output and run.path.exists()

    kept = invoke("runs", "rm", run.id, input="n\n")
    assert kept.exit_code != 0 and run.path.exists()
    gone = invoke("runs", "rm", run.id, "--yes")
    assert gone.exit_code == 0 and not run.path.exists()
    assert_one_line_error(invoke("runs", "show", run.id), "no run")


def test_ctrl_c_stops_the_foreground_run_with_a_checkpoint(runs_dir, env_data):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([*bvae_command(), "train", *TINY, "--iterations", "100000",
                             "--name", "ctrlc"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline:
            runs = list_runs(runs_dir)
            if runs and (runs[0].raw_status().iteration or 0) > 0:
                run = runs[0]
                break
            time.sleep(0.05)
        assert run is not None, "the run never started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # the shell's convention for an interrupted command
    assert "Traceback" not in err
    status = Run(run.path).status()
    assert status.state == "stopped"
    from bvae_tui.engine.train.checkpoint import load_checkpoint

    assert load_checkpoint(run.last_checkpoint)["iteration"] == status.iteration > 0
    assert f"bvae resume {run.id}" in " ".join(out.split())


def test_each_objective_from_the_command_line(runs_dir, env_data):
    """The real `bvae` command: a wrong objective's field is one line on stderr, and a FactorVAE
    run trained by a detached worker logs its terms in worker.log."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bad = subprocess.run([*bvae_command(), "train", *TINY, "--objective", "tcvae",
                          "--lambda-od", "3"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and list(runs_dir.iterdir()) == []
    assert bad.stderr.strip() == ("error: --lambda-od is used by objectives dip-i and dip-ii, "
                                  "not tcvae")
    out = subprocess.run([*bvae_command(), "train", *TINY, "--objective", "factor",
                          "--gamma-tc", "20", "--iterations", "20", "--detach"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    run = Run(runs_dir / out.stdout.strip())
    deadline = time.monotonic() + 120
    while run.status().active and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.status().state == "finished", run.log_path.read_text()
    assert run.name == "dsprites-mini-factor-g20"
    rows = [line for line in run.log_path.read_text().splitlines() if line.startswith("iter ")]
    assert len(rows) == 2 and all(" tc " in r and " disc_acc " in r for r in rows), rows
    assert all(0.0 <= r.disc_acc <= 1.0 for r in run.metrics())
    shown = subprocess.run([*bvae_command(), "runs", "show", run.id], env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "objective terms: tc " in shown.stdout and " disc_acc " in shown.stdout
