"""Comparing runs (engine): legends name only what differs, groups over config fields, mean /
std / n per group with missing evals counted, aligned curves, and following live runs."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from bvae_tui.engine.analysis.compare import (
    differing_fields,
    group_band,
    group_runs,
    resolve_by,
    run_labels,
)
from bvae_tui.engine.analysis.compare_runs import RunsFollower, load_runs
from bvae_tui.engine.analysis.compare_table import choose_metrics, score_table, sort_groups
from bvae_tui.engine.errors import ConfigError
from tests.compare_helpers import beta_seed_grid, make_run, row

SCORES = {  # (beta, seed) -> eval scores; one beta-8 run has none
    (1.0, 1): {"betavae": 0.70, "mig": 0.02},
    (1.0, 2): {"betavae": 0.74, "mig": 0.04},
    (1.0, 3): {"betavae": 0.72, "mig": 0.03},
    (8.0, 1): {"betavae": 0.85, "mig": 0.20},
    (8.0, 2): {"betavae": 0.81, "mig": 0.10},
    (8.0, 3): None,
}


@pytest.fixture
def grid(runs_dir):
    runs = beta_seed_grid(runs_dir, SCORES)
    return runs, load_runs(runs.values())


def test_default_grouping_is_the_differing_field_but_seed(grid):
    _, data = grid
    assert differing_fields(data) == ["beta", "seed"]
    by = resolve_by(None, data)
    assert by == ("beta",)
    groups = group_runs(data, by)
    assert [g.label for g in groups] == ["β=1", "β=8"]
    assert [len(g.runs) for g in groups] == [3, 3]
    assert [g.values for g in groups] == [{"beta": 1.0}, {"beta": 8.0}]
    assert [g.colour for g in groups] == [0, 1]


def test_score_table_mean_std_n_best_and_missing_evals(grid):
    runs, data = grid
    groups = group_runs(data, ("beta",))
    table = score_table(groups, choose_metrics(None, data))
    assert table.metrics == ["betavae", "mig", "kl", "active"]
    low = table.stat(0, "betavae")
    assert low.n == 3
    assert low.mean == pytest.approx(statistics.mean([0.70, 0.74, 0.72]))
    assert low.std == pytest.approx(statistics.stdev([0.70, 0.74, 0.72]))
    high = table.stat(1, "betavae")
    assert high.n == 2  # the third beta-8 run has no eval.json
    assert high.mean == pytest.approx(0.83)
    assert high.std == pytest.approx(statistics.stdev([0.85, 0.81]))
    assert table.best == {"betavae": 1, "mig": 1}  # neither KL nor active latents is "better"
    assert [r.id for r in table.without_eval] == [runs[(8.0, 3)].id]
    # KL comes from the last metrics row of every run, evaluated or not.
    kl = table.stat(1, "kl")
    assert kl.n == 3
    assert kl.mean == pytest.approx(statistics.mean([20 / 8 + s for s in (1, 2, 3)]))
    assert sort_groups(table, "betavae") == [1, 0]
    assert sort_groups(table, "betavae", descending=False) == [0, 1]

    as_json = table.as_json()
    assert as_json["by"] == ["beta"]
    assert as_json["best"] == {"betavae": "β=8", "mig": "β=8"}
    assert as_json["groups"][1]["metrics"]["betavae"]["n"] == 2
    assert as_json["without_eval"] == [runs[(8.0, 3)].id]


def test_single_run_groups_have_no_std_and_lower_loss_is_best(runs_dir):
    a = make_run(runs_dir, "a", rows=[row(100, 300.0, 5.0)], beta=2.0)
    b = make_run(runs_dir, "b", rows=[row(100, 200.0, 9.0)], beta=6.0)
    data = load_runs([a, b])
    table = score_table(group_runs(data, resolve_by(None, data)), ["loss"])
    assert table.stat(0, "loss").std is None
    assert table.stat(0, "loss").text(1) == "300.0"
    assert table.best == {"loss": 1}


def test_legends_name_only_the_fields_that_differ(runs_dir):
    runs = [
        make_run(runs_dir, "x", beta=4.0, seed=1, device="cpu"),
        make_run(runs_dir, "y", beta=4.0, seed=2, device="cuda:0", log_every=50),
        make_run(runs_dir, "z", objective="B", gamma=100.0, c_max=20.0, seed=1),
    ]
    data = load_runs(runs)
    # Where a run ran and how often it logged do not make it another experiment.
    assert differing_fields(data) == ["objective", "seed"]
    assert "device" in differing_fields(data, bookkeeping=True)
    assert run_labels(data) == ["obj=H seed=1", "obj=H seed=2", "obj=B seed=1"]
    # beta does not apply to objective B, gamma not to H: neither is named where it does not.
    two = load_runs([runs[0], make_run(runs_dir, "w", beta=8.0, seed=1)])
    assert run_labels(two) == ["β=4", "β=8"]
    assert run_labels(two, ascii_only=True) == ["beta=4", "beta=8"]
    mixed = load_runs([runs[2], make_run(runs_dir, "v", objective="B", gamma=50.0,
                                          c_max=20.0, seed=1)])
    assert run_labels(mixed) == ["γ=100", "γ=50"]


def test_identical_configs_are_told_apart_by_name(runs_dir):
    data = load_runs([make_run(runs_dir, "first"), make_run(runs_dir, "again")])
    assert differing_fields(data) == []
    assert run_labels(data) == ["first", "again"]
    groups = group_runs(data, resolve_by(None, data))
    assert [g.label for g in groups] == ["first", "again"]  # one group per run


def test_group_by_other_fields_and_bad_fields(grid):
    _, data = grid
    assert resolve_by("seed", data) == ("seed",)
    assert resolve_by("z-dim,beta", data) == ("z_dim", "beta")
    by_seed = group_runs(data, ("seed",))
    assert [g.label for g in by_seed] == ["seed=1", "seed=2", "seed=3"]
    assert resolve_by("run", data) == ()
    assert len(group_runs(data, ())) == 6
    with pytest.raises(ConfigError, match="--by: no config field 'betta'; use one of .*beta"):
        resolve_by("betta", data)
    with pytest.raises(ConfigError, match="--metric: no run has 'dci'; these runs have: "
                                          "betavae, mig, loss"):
        choose_metrics("dci", data)


def test_numbers_sort_by_size_not_text(runs_dir):
    runs = [make_run(runs_dir, f"b{b}", beta=b) for b in (16.0, 2.0, 8.0)]
    data = load_runs(runs)
    assert [g.label for g in group_runs(data, ("beta",))] == ["β=2", "β=8", "β=16"]


def test_band_aligns_runs_of_different_lengths(runs_dir):
    long = make_run(runs_dir, "long", rows=[row(i, 10.0 * i, 1.0) for i in (10, 20, 30, 40)],
                    seed=1)
    short = make_run(runs_dir, "short", rows=[row(i, 30.0 * i, 1.0) for i in (10, 30)], seed=2)
    data = load_runs([long, short])
    (group,) = group_runs(data, ("beta",))
    band = group_band(group, "loss")
    assert band.xs.tolist() == [10, 20, 30, 40]
    assert band.n.tolist() == [2, 2, 2, 1]  # the short run stops at 30
    assert band.lo.tolist() == [100, 200, 300, 400]
    assert band.hi.tolist() == [300, 600, 900, 400]  # 600: the short run interpolated at 20
    assert np.allclose(band.mean, [200, 400, 600, 400])


def test_follower_reads_only_new_rows_and_sees_new_scores(runs_dir):
    from bvae_tui.engine.runs.records import EvalResult

    run = make_run(runs_dir, "live", rows=[row(100, 50.0, 2.0)], state="running")
    follower = RunsFollower([run])
    first = follower.poll()
    assert first is not None and first[0].rows == 1
    assert follower.poll() is None  # nothing changed
    with open(run.metrics_path, "a") as fh:
        fh.write(row(200, 40.0, 3.0).to_line())
        fh.write('{"iter": 300, "loss": 3')  # a row being written: not read yet
    (data,) = follower.poll()
    assert data.iters.tolist() == [100, 200]
    assert data.final("loss") == 40.0
    run.write_eval(EvalResult(scores={"mig": 0.3}))
    (data,) = follower.poll()
    assert data.scores == {"mig": 0.3} and data.rows == 2
