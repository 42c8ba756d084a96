"""`bvae compare`: the grouped table, JSON, CSV and figure, and one-line errors that write
nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pytest
from typer.testing import CliRunner

from tests.compare_helpers import beta_seed_grid, make_run, one_line_error
from tests.conftest import bvae_command

SCORES = {(1.0, 1): {"betavae": 0.70}, (1.0, 2): {"betavae": 0.74},
          (4.0, 1): {"betavae": 0.85}, (4.0, 2): None}


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def grid(runs_dir):
    return beta_seed_grid(runs_dir, SCORES)


def test_table_groups_by_beta_and_marks_the_best(grid):
    result = bvae("compare")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "4 runs, grouped by β: 2 groups" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("β=")}
    assert "0.720 ± 0.028" in lines["β=1"]
    assert "0.850 (n=1) *" in lines["β=4"]  # one of its two runs has no eval.json
    assert "1 of 4 runs have no eval.json" in out


def test_json_curves_and_metric_choice(grid):
    result = bvae("compare", "--json", "--curves", "--metric", "betavae,kl")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == ["beta"] and data["metrics"] == ["betavae", "kl"]
    low = data["groups"][0]
    assert low["label"] == "β=1" and low["values"] == {"beta": 1.0}
    assert low["metrics"]["betavae"]["n"] == 2
    assert data["best"] == {"betavae": "β=4"}
    assert sorted(r["label"] for r in data["runs"]) == [
        "β=1 seed=1", "β=1 seed=2", "β=4 seed=1", "β=4 seed=2"]
    assert {r["kl"] for r in data["runs"]} == {20 / b + s for b, s in SCORES}


def test_selection_by_names_filter_and_by_run(grid):
    result = bvae("compare", "b1-s1", "b4-s1", "--json")
    assert [g["label"] for g in json.loads(result.stdout)["groups"]] == ["β=1", "β=4"]
    result = bvae("compare", "--filter", "b1-", "--by", "run", "--json")
    data = json.loads(result.stdout)
    assert data["by"] == [] and [g["label"] for g in data["groups"]] == ["seed=1", "seed=2"]


def test_csv_of_the_table(grid, tmp_path):
    target = tmp_path / "table.csv"
    result = bvae("compare", "--csv", str(target), "--metric", "betavae")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["beta"] for r in rows] == ["1", "4"]
    assert rows[0]["runs"] == "2" and rows[0]["betavae_n"] == "2"
    assert float(rows[0]["betavae_mean"]) == pytest.approx(0.72)
    assert rows[1]["betavae_std"] == ""  # one value: no spread


def test_plot_writes_a_figure(grid, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    target = tmp_path / "fig" / "compare.png"
    result = bvae("compare", "--plot", str(target))
    assert result.exit_code == 0, result.output
    with Image.open(target) as img:
        assert img.width > 600 and img.height > 400
    svg = tmp_path / "compare.svg"
    assert bvae("compare", "--plot", str(svg), "--by", "seed").exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml")


def test_bad_input_is_one_line_and_writes_nothing(grid, runs_dir, tmp_path):
    target = tmp_path / "table.csv"
    one_line_error(bvae("compare", "--by", "betta", "--csv", str(target)),
                    "--by: no config field 'betta'", "beta")
    one_line_error(bvae("compare", "--metric", "dci", "--csv", str(target)),
                    "--metric: no run has 'dci'", "betavae")
    assert not target.exists()
    one_line_error(bvae("compare", "--csv", str(tmp_path / "table.txt")), "must end in .csv")
    one_line_error(bvae("compare", "--plot", str(tmp_path / "f.gif")), "must end in .png")
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(bvae("compare", "--csv", str(blocker / "t.csv"), "--plot",
                         str(tmp_path / "f.png")), "is a file, not a folder")
    assert not (tmp_path / "f.png").exists()  # the figure waits for every check to pass
    one_line_error(bvae("compare", "nosuchrun"), "no run 'nosuchrun'")
    one_line_error(bvae("compare", "--filter", "nothing-like-this"), "no run under")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder(grid, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_error(bvae("compare", "--csv", str(locked / "t.csv")), "permission denied")


def test_runs_without_rows(runs_dir):
    empty = make_run(runs_dir, "empty", rows=[])
    one_line_error(bvae("compare", empty.id), "nothing to compare: no metrics rows yet")
    make_run(runs_dir, "full", beta=2.0)
    result = bvae("compare", "--json")
    assert result.exit_code == 0
    assert "left out 1 run(s) with no metrics rows yet" in result.stderr
    assert len(json.loads(result.stdout)["groups"]) == 1


def test_as_a_real_command(grid, runs_dir):
    out = subprocess.run([*bvae_command(), "compare", "--curves"], capture_output=True,
                         text=True, env={**os.environ, "BVAE_RUNS_DIR": str(runs_dir)})
    assert out.returncode == 0, out.stderr
    assert "grouped by β" in out.stdout and "β=4 seed=2" in out.stdout


def test_help_names_the_extras():
    assert "pip install 'bvae-tui[plot]'" in " ".join(bvae("compare", "--help").stdout.split())
    text = " ".join(bvae("export", "tensorboard", "--help").stdout.split())
    assert "pip install 'bvae-tui[tensorboard]'" in text


def test_a_sweeps_members_by_sweep_in_compare_and_export(grid, runs_dir, env_data, monkeypatch,
                                                        tmp_path):
    from bvae_tui.engine.runs.sweeps import control, local
    from tests.sweep_helpers import tiny_spec
    from tests.tui_helpers import metrics_row

    monkeypatch.setattr(local, "start_scheduler", lambda sweep, poll=None: 0)  # no training
    sweep, _ = control.create(tiny_spec(30, 10, beta="2,8", seed="1,2", device="cpu"),
                              runs_dir, env_data)
    for member in sweep.members():
        member.metrics_path.write_text("".join(metrics_row(i).to_line() for i in (10, 20)))
    result = bvae("compare", "--sweep", sweep.id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the sweep's four members only (not the grid's runs), a group per swept beta
    assert data["by"] == ["beta"] and [g["label"] for g in data["groups"]] == ["β=2", "β=8"]
    assert [g["metrics"]["kl"]["n"] for g in data["groups"]] == [2, 2]
    out = tmp_path / "rows.csv"
    result = bvae("export", "csv", "--sweep", sweep.id, "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 8 and {r["beta"] for r in rows} == {"2.0", "8.0"}
    one_line_error(bvae("export", "csv", "-o", str(out)), "or --sweep SWEEP")
    one_line_error(bvae("compare", "--sweep", "nope"), "bvae sweeps")
