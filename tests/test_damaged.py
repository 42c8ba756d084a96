"""Damaged files never crash a face: a garbage or wrongly typed status.json or config.json, a
garbage metrics line, a truncated checkpoint. Each shows as a damaged run with its reason in
`bvae runs` and `bvae runs show`; export and eval stop with one line and exit 1; the other runs
are not affected. (The TUI's table: tests/test_tui_runs.py.)"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.train.trainer import train
from tests.test_trainer import _run

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def _damage(run: Run, kind: str) -> None:
    if kind == "garbage status":
        run.status_path.write_text("{garbage")
    elif kind == "garbage config":
        run.config_path.write_text("[1, 2")
    elif kind == "wrong types":
        status = json.loads(run.status_path.read_text())
        status.update(iteration="50", updated="yesterday", total="x", pid=True)
        run.status_path.write_text(json.dumps(status))
        record = json.loads(run.config_path.read_text())
        record["config"]["z_dim"] = "three"
        run.config_path.write_text(json.dumps(record))
    elif kind == "garbage metrics":
        with open(run.metrics_path, "a") as fh:
            fh.write('garbage\n{"iter": "x", "loss": [1]}\n')
    elif kind == "truncated checkpoint":
        data = run.last_checkpoint.read_bytes()
        run.last_checkpoint.write_bytes(data[: len(data) // 3])


KINDS = ["garbage status", "garbage config", "wrong types", "garbage metrics",
         "truncated checkpoint"]
# What `bvae runs` says beside the damaged run (None: the run reads fine, the damage is skipped).
NOTES = {"garbage status": "status.json is missing or corrupt",
         "garbage config": "config.json is missing or corrupt",
         "wrong types": "config.json has z_dim = 'three', which must be a whole number",
         "garbage metrics": None, "truncated checkpoint": None}
# What export and eval say (None: they work).
STOPS = {"garbage status": None, "garbage config": "config.json is missing or corrupt",
         "wrong types": "config.json has z_dim = 'three'", "garbage metrics": None,
         "truncated checkpoint": "no readable checkpoint"}


@pytest.fixture(scope="module")
def trained(mini_data_dir, tmp_path_factory):
    """One finished tiny run to copy (training once for all the cases)."""
    root = tmp_path_factory.mktemp("template")
    run = _run(root, mini_data_dir, iterations=10)
    assert train(run) == "finished"
    return run


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_run_shows_its_reason_and_affects_no_other(kind, trained, runs_dir,
                                                             mini_data_dir):
    good = Run(runs_dir / "20990101-000000-good")
    bad = Run(runs_dir / "20990101-000001-bad")
    for run in (good, bad):
        shutil.copytree(trained.path, run.path)
    _damage(bad, kind)

    listed = invoke("runs")
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.output.splitlines()[1:]}
    assert "finished" in lines[good.id] and set(lines) == {good.id, bad.id}
    if NOTES[kind]:
        assert NOTES[kind][:40] in lines[bad.id], lines[bad.id]
    as_json = invoke("runs", "--json")
    assert as_json.exit_code == 0 and len(json.loads(as_json.output)) == 2

    shown = invoke("runs", "show", bad.id)
    assert shown.exit_code == 0 and "Traceback" not in shown.output, shown.output
    if NOTES[kind]:
        assert NOTES[kind] in shown.output
    shown_json = invoke("runs", "show", bad.id, "--json")
    assert shown_json.exit_code == 0 and json.loads(shown_json.output)["id"] == bad.id

    commands = [("export", "png", bad.id)]
    if kind != "garbage metrics":  # eval never reads metrics.jsonl (and takes a while)
        commands.append(("eval", bad.id, "--fast", "--metrics", "mig"))
    for args in commands:
        result = invoke(*args)
        if STOPS[kind] is None:
            assert result.exit_code == 0, (args, result.output)
        else:
            assert result.exit_code == 1, (args, result.output)
            assert result.output.count("\n") == 1 and result.output.startswith("error: ")
            assert STOPS[kind] in result.output, result.output
    for args in (("export", "png", good.id), ("runs", "show", good.id)):
        assert invoke(*args).exit_code == 0
