"""Sweep grammar, grids and spec files: what a sweep is before anything runs (no workers)."""

from __future__ import annotations

import json
import sys
import time

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.config import field_info
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.sweeps import control
from bvae_tui.engine.runs.sweeps.grid import grid, known_field, parse_values
from bvae_tui.engine.runs.sweeps.spec import (
    SweepSpec,
    builtin_specs,
    load_spec,
    parse_field_values,
    parse_time,
    spec_from_dict,
)
from bvae_tui.engine.runs.sweeps.store import Sweep

MINI = {"dataset": "dsprites-mini", "iterations": "20", "z_dim": "4", "batch_size": "8"}


@pytest.mark.parametrize("field,text,values", [
    ("beta", "1,2,4,8", [1.0, 2.0, 4.0, 8.0]),
    ("seed", "1..5", [1, 2, 3, 4, 5]),
    ("seed", "0..10:5", [0, 5, 10]),
    ("lr", "0.1..0.5:0.1", [0.1, 0.2, 0.3, 0.4, 0.5]),
    ("beta", "1..16:x2", [1.0, 2.0, 4.0, 8.0, 16.0]),
    ("c_max", "5,10,25..75:25,100", [5.0, 10.0, 25.0, 50.0, 75.0, 100.0]),
    ("objective", "H,B", ["H", "B"]),
    ("z_dim", "10", [10]),
    ("dataset", "folder:../some/path", ["folder:../some/path"]),  # a path is no range
])
def test_grammar(field, text, values):
    assert parse_values(field_info(field), text) == values


@pytest.mark.parametrize("field,text,message", [
    ("beta", "1..", "is not a range"),
    ("beta", "..4", "is not a range"),
    ("beta", "1..4:", "is not a range"),
    ("seed", "5..1", "runs backwards"),
    ("seed", "1..5:0", "needs a step above 0"),
    ("beta", "1..8:x1", "needs a factor above 1"),
    ("seed", "0.5..2", "gives fractions"),
    ("seed", "1..1e9", "at most 1,000,000"),
    ("seed", "1,1", "lists 1 twice"),
    ("objective", "H,C", "must be one of H, B"),
    ("objective", "H..B", "cannot take a range"),
    ("beta", "-1,2", "must be at least 0"),
    ("dataset", "dsprites,dsprites", "lists dsprites twice"),  # a list is an axis (a study)
    ("device", "cpu,cuda:0", "--gpus 0,1"),
    ("beta", ",", "no values"),
])
def test_grammar_errors_name_the_field_and_the_fix(field, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_values(field_info(field), text)
    assert err.value.field == field and "\n" not in str(err.value)
    assert str(err.value).startswith(field_info(field).option)


def test_unknown_field_lists_the_fields():
    with pytest.raises(ConfigError, match="unknown field 'bta'.*beta"):
        known_field("bta")
    assert known_field("c-max").name == "c_max"


def test_grid_order_first_axis_outermost():
    cells = list(grid({"beta": [1.0, 4.0], "seed": [1, 2, 3]}, ["beta", "seed"]))
    assert cells[:4] == [{"beta": 1.0, "seed": 1}, {"beta": 1.0, "seed": 2},
                         {"beta": 1.0, "seed": 3}, {"beta": 4.0, "seed": 1}]
    assert len(cells) == 6


def test_time_limits():
    assert [parse_time(v) for v in (90, "90", "1:30", "1:30:00", "2-00:00:00", "1-2")] == \
        [90, 90, 2, 90, 2880, 1560]
    for bad in ("x", "1:2:3:4", "0", True):
        with pytest.raises(ConfigError):
            parse_time(bad)


def test_spec_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('name = "g"\npreset = "dsprites-H"\n[fixed]\niterations = 50\n'
                    'eval_at_end = true\n[sweep]\nseed = "1..3"\nbeta = [1, 4]\n'
                    '[executor]\nkind = "slurm"\n[executor.slurm]\ntime = "1:00:00"\n'
                    'gpus_per_node = 1\nargs = { account = "me" }\n')
    spec = load_spec(str(path))
    assert spec.axes == ["seed", "beta"] and spec.count() == 6  # the file's order
    assert spec.fixed == {"iterations": 50, "eval_at_end": True}
    assert spec.executor.executor == "slurm" and spec.executor.slurm.time == 60
    assert spec.executor.slurm.args == {"account": "me"}
    # The command line overrides the file field by field; a field keeps its place in the grid.
    cli = SweepSpec(values=parse_field_values({"beta": "2,8,16", "iterations": "70"}))
    merged = spec.merged(cli)
    assert merged.values["beta"] == [2.0, 8.0, 16.0] and merged.fixed["iterations"] == 70
    assert merged.axes == ["seed", "beta"] and merged.preset == "dsprites-H"
    swept, config = next(merged.members())
    assert swept == {"seed": 1, "beta": 2.0} and config.beta == 2.0 and config.eval_at_end


@pytest.mark.parametrize("text,message", [
    ('[fixed]\nbeta = [1, 2]\n', "put lists under"),
    ('[fixed]\nbeta = 1\n[sweep]\nbeta = [1, 2]\n', "both fixed and swept"),
    ('[sweep]\nbta = [1, 2]\n', "unknown field 'bta'"),
    ('colour = 1\n', "unknown key"),
    ('[executor]\ngpus = "0,1"\n', "gpus must be a list"),
    ('[sweep]\neval_at_end = [true, false]\n', "cannot take a list"),
    ('[sweep\n', "not valid TOML"),
])
def test_spec_file_errors_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_spec(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_builtin_specs_are_the_studies_grids():
    assert {"locatello-beta", "capacity-grid"} <= set(builtin_specs())
    beta = load_spec("builtin:locatello-beta")
    assert beta.values["beta"] == [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]
    config = next(beta.members())[1]
    assert (config.objective, config.iterations, config.batch_size, config.z_dim, config.lr) == \
        ("H", 300_000, 64, 10, 1e-4)
    capacity = load_spec("builtin:capacity-grid")
    assert capacity.values["c_max"] == [5.0, 10.0, 25.0, 50.0, 75.0, 100.0]
    config = next(capacity.members())[1]
    assert (config.objective, config.gamma, config.c_stop_iter) == ("B", 1000.0, 100_000)
    with pytest.raises(ConfigError, match="no built-in spec 'nope'.*locatello-beta"):
        load_spec("builtin:nope")


def test_plan_refuses_empty_and_huge_grids(runs_dir, env_data):
    with pytest.raises(ConfigError, match="nothing to sweep"):
        control.plan(SweepSpec(values=parse_field_values(MINI)))
    huge = SweepSpec(values=parse_field_values({**MINI, "seed": "1..10001"}))
    with pytest.raises(ConfigError, match="10,001 members, more than 10,000; pass --yes"):
        control.plan(huge)
    assert control.plan(huge, yes=True).count == 10_001
    assert not list(runs_dir.iterdir())  # planning creates nothing


def test_members_are_ordinary_queued_runs(runs_dir, env_data, monkeypatch):
    """The sweep directory and its members as written (the scheduler is not started here)."""
    monkeypatch.setattr(control.local, "start_scheduler", lambda sweep, poll=None: 0)
    spec = SweepSpec(values=parse_field_values({**MINI, "beta": "1,4", "seed": "1..3",
                                                "device": "cpu"}), name="grid")
    sweep, plan = control.create(spec)
    assert plan.count == 6 and plan.devices == ["cpu"]
    record = sweep.record()
    assert record.axes == ["beta", "seed"] and record.values == {"beta": [1.0, 4.0],
                                                                 "seed": [1, 2, 3]}
    assert record.fixed["dataset"] == "dsprites-mini" and len(record.members) == 6
    on_disk = json.loads((sweep.path / "sweep.json").read_text())
    assert on_disk["members"] == record.members
    members = sweep.members()
    for run, swept in zip(members, sweep.member_values(), strict=True):
        rec = run.record()
        assert rec.sweep == sweep.id and rec.sweep_values == swept
        assert run.config.beta == swept["beta"] and run.config.seed == swept["seed"]
        assert run.config.device == "cpu"
    # A member waiting for its slot stays queued however long it waits (it is not lost).
    run = members[0]
    status = json.loads(run.status_path.read_text())
    run.status_path.write_text(json.dumps({**status, "updated": time.time() - 3600}))
    assert run.status().state == "queued"
    assert sweep.member("beta=4,seed=2").id == members[4].id
    summary = sweep.summary()
    assert (summary.members, summary.queued, summary.state) == (6, 6, "lost")  # no scheduler


def test_remote_worker_is_judged_by_its_heartbeat(runs_dir, env_data):
    from tests.tui_helpers import make_run

    run = make_run(runs_dir, env_data, "remote", "running", pid=999_999)
    run.write_status(host="some-cluster-node", heartbeat=time.time())
    assert run.status().state == "running"  # no pid lookup on another machine
    run.write_status(heartbeat=time.time() - 3600)
    assert run.status().state == "lost"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args,message", [
    ([], "nothing to sweep"),
    (["--beta", "1..4:0"], "needs a step above 0"),
    (["--seed", "1,2", "--dataset", "a,b"], "unknown dataset 'a'"),
    (["--seed", "1..10001"], "pass --yes"),
    (["--seed", "1,2", "--spec", "builtin:nope"], "no built-in spec"),
    (["--seed", "1,2", "--partition", "gpu"], "add --executor slurm"),
    (["--seed", "1,2", "--executor", "pbs"], "--executor must be one of local, slurm"),
    (["--seed", "1,2", "--device", "cpu", "--per-gpu", "2"], "use --slots"),
    (["--seed", "1,2", "--time", "soon"], "not a time limit"),
    (["--seed", "1,2", "--slurm-arg", "account"], "KEY=VALUE"),
])
def test_cli_bad_input_is_one_line(runs_dir, env_data, args, message):
    result = _cli("sweep", "--dataset", "dsprites-mini", *args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (runs_dir / "sweeps").exists() or not list((runs_dir / "sweeps").iterdir())


def test_cli_unknown_field_and_missing_submitit(runs_dir, env_data, monkeypatch, tmp_path):
    result = _cli("sweep", "--dataset", "dsprites-mini", "--bta", "1,2")
    assert result.exit_code == 2 and "No such option: --bta" in result.output
    spec = tmp_path / "s.toml"
    spec.write_text("[sweep]\nbta = [1, 2]\n")
    result = _cli("sweep", "--spec", str(spec))
    assert result.exit_code == 1 and "unknown field 'bta'" in result.output
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    result = _cli("sweep", "--dataset", "dsprites-mini", "--seed", "1,2", "--executor", "slurm")
    assert result.exit_code == 1
    assert result.output.strip() == ("error: the Slurm executor needs submitit: pip install "
                                     "'bvae-tui[slurm]' (or pip install submitit)")


def test_cli_specs_lists_and_prints_builtins():
    result = _cli("sweep", "specs", "--json")
    assert result.exit_code == 0
    listed = {s["name"]: s for s in json.loads(result.output)}
    assert listed["locatello-beta"]["members"] == 30
    result = _cli("sweep", "specs", "capacity-grid")
    assert result.exit_code == 0 and "c_max = [5, 10, 25, 50, 75, 100]" in result.output
    assert spec_from_dict({"sweep": {"seed": [1, 2]}}).count() == 2


def test_sweeps_and_show_on_a_damaged_sweep(runs_dir):
    folder = runs_dir / "sweeps" / "20260101-000000-broken"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{not json")
    result = _cli("sweeps", "--json")
    assert result.exit_code == 0 and json.loads(result.output)[0]["state"] == "lost"
    result = _cli("sweep", "show", folder.name)
    assert result.exit_code == 1 and "sweep.json is missing or corrupt" in result.output
    assert "missing or corrupt" in Sweep(folder).summary().error


def test_objective_axis_and_fields_only_some_objectives_use():
    # a swept beta under H and B would train each B member twice: refused, naming the fix
    spec = SweepSpec(values=parse_field_values({"objective": "H,B", "beta": "1,4"}))
    with pytest.raises(ConfigError, match="objective B does not use it; make one sweep per"):
        list(spec.members())
    # a fixed beta goes to the members whose objective uses it
    spec = SweepSpec(values=parse_field_values({"objective": "H,B", "beta": "2", "gamma": "50"}))
    configs = {cfg.objective: cfg for _, cfg in spec.members()}
    assert configs["H"].beta == 2.0 and configs["H"].gamma == field_info("gamma").default
    assert configs["B"].gamma == 50.0 and configs["B"].beta == field_info("beta").default
