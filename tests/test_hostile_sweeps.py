"""Sweeps against hostile input and hostile neighbours: Slurm options that try to add shell lines
to the sbatch script, and lock files that someone else holds (or swapped for a symlink)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.errors import SweepError
from bvae_tui.engine.runs.sweeps import control, slurm
from bvae_tui.engine.runs.sweeps.store import find_sweep

MINI = ["--dataset", "dsprites-mini", "--iterations", "20", "--z-dim", "4", "--batch-size", "8",
        "--seed", "1,2"]


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
