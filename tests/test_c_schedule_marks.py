"""Objective B's C schedule on the monitor's time axis (issue 21): marks where C passes whole
values on the curves and the MIG curve (one shared iteration axis), the C of the probe in the
heat map's caption; the schedule matches the one training uses."""

from __future__ import annotations

import pytest

from bvae_tui.engine.analysis.c_schedule import Schedule, marks, schedule
from bvae_tui.engine.config import make_config
from bvae_tui.engine.train.objectives.h_b import capacity
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.widgets.curve_plot import CurvePlot
from bvae_tui.tui.widgets.mi_heatmap import MIHeatmap
from tests.test_tui_probes import probe
from tests.tui_helpers import make_run, metrics_row, open_monitor, wait_for


def test_schedule_is_the_trainings():
    cfg = make_config(None, dataset="dsprites-mini", objective="B", c_max=25.0,
                      c_stop_iter=100_000)
    plan = schedule(cfg.to_dict())
    assert plan == Schedule(25.0, 100_000.0)
    for it in (1, 999, 40_000, 100_000, 150_000):
        assert plan.at(it) == pytest.approx(capacity(it, cfg))
    assert plan.iteration_of(10.0) == 40_000


@pytest.mark.parametrize("config", [
    {"objective": "H", "c_max": 25.0},
    {"objective": "B", "c_max": "25"},
    {"objective": "B", "c_max": float("nan")},
    {"objective": "B", "c_stop_iter": 0},
    {"objective": "B", "c_max": True},
])
def test_no_schedule_outside_objective_b_or_from_a_damaged_config(config):
    assert schedule(config) is None


def test_marks_take_the_finest_whole_step_that_fits():
    plan = Schedule(25.0, 100_000.0)  # C passes a whole nat every 4,000 steps
    assert marks(plan, 0, 100_000, 30) == [(4000.0 * k, float(k)) for k in range(1, 26)]
    assert [c for _, c in marks(plan, 0, 100_000, 10)] == [5.0, 10.0, 15.0, 20.0, 25.0]
    assert [c for _, c in marks(plan, 0, 100_000, 3)] == [10.0, 20.0]
    assert [c for _, c in marks(plan, 10_000, 30_000, 10)] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert marks(plan, 200_000, 300_000, 10) == []  # C is held at its maximum there
    assert marks(plan, 0, 100_000, 0) == [] and marks(Schedule(0.0, 10.0), 0, 10, 5) == []


async def test_monitor_marks_c_on_the_shared_axis_and_names_the_probes_c(runs_dir, tmp_path):
    # C rises to 10 nats over 100 steps: 1 nat every 10 steps; metrics every 10, probes every 20.
    run = make_run(runs_dir, tmp_path, "capacity", "running", rows=10, objective="B",
                   c_max=10.0, c_stop_iter=100)
    run.probes_path.write_text("".join(probe(i, 0.1 + i / 200).to_line() for i in (20, 40, 60)))
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        mon = await open_monitor(app, pilot, run)
        heat = mon.query_one(MIHeatmap)
        await wait_for(pilot, lambda: heat.matrix is not None, 10, "the probes")
        await pilot.pause()
        mig = mon.query_one("#plot-mig", CurvePlot)
        loss = mon.query_one("#plot-loss", CurvePlot)
        # The MIG curve (probes from 20 to 60) spans the curves' iterations (10 to 100).
        assert mig._x_range() == loss._x_range() == (10.0, 100.0)
        assert mig.marks == loss.marks and mig.marks
        assert all(label == f"C{it / 10:g}" for it, label in mig.marks)
        lines = str(mig.render()).split("\n")
        axis = lines[-1]
        assert "C5" in axis and "C9" in axis  # labels where C passes 5 and 9 nats
        col = axis.index("C5")
        assert all(line[col] == "┊" or 0x2800 <= ord(line[col]) <= 0x28FF
                   for line in lines[1:-1])  # a dotted column (or the curve) above C5
        assert heat.caption.startswith("probe @ 60 (latest) C 6 MIG")

        await pilot.press("left_square_bracket")
        assert heat.caption.startswith("probe @ 40 (2/3) C 4 MIG")

        # A later probe widens the shared axis; the marks follow.
        with open(run.metrics_path, "a") as fh:
            fh.write(metrics_row(200).to_line())
        await wait_for(pilot, lambda: loss._x_range() == (10.0, 200.0), 10, "the new row")
        assert mig._x_range() == (10.0, 200.0)
        assert max(it for it, _ in mig.marks) <= 100  # C is held at 10 past step 100


async def test_no_c_marks_for_objective_h(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "higgins", "running", rows=5)
    run.probes_path.write_text(probe(20, 0.4).to_line())
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        mon = await open_monitor(app, pilot, run)
        heat = mon.query_one(MIHeatmap)
        await wait_for(pilot, lambda: heat.matrix is not None, 10, "the probe")
        assert mon.query_one("#plot-mig", CurvePlot).marks == []
        assert heat.caption.startswith("probe @ 20 (latest) MIG") and " C " not in heat.caption
