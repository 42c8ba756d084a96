"""The monitor's MI heat map follows the run's probes live (issue 21); [ and ] step through them."""

from __future__ import annotations

from bvae_tui.engine.runs.records import ProbeRow
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.widgets.curve_plot import CurvePlot
from bvae_tui.tui.widgets.mi_heatmap import MIHeatmap
from tests.tui_helpers import make_run, open_monitor, wait_for

FACTORS = ["shape", "scale", "posX"]
ENTROPY = [1.0986, 1.0986, 2.0794]


def probe(iteration: int, share: float) -> ProbeRow:
    """Latent 0 carries ``share`` of shape; the rest carry next to nothing."""
    mi = [[share, 0.01, 0.02], [0.0, 0.3, 0.01], [0.0, 0.0, 0.4], [0.0, 0.0, 0.0]]
    return ProbeRow(iter=iteration, mig=share / 3, factors=FACTORS, mi=mi,
                    factor_entropy=ENTROPY, best_latent=[0, 1, 2])


def shown(heat: MIHeatmap) -> float:
    assert heat.matrix is not None
    return round(heat.matrix.shares()[0][0], 6)


async def test_heat_map_follows_new_probes_and_steps_through_them(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "probed", "running")
    run.probes_path.write_text(probe(100, 0.2).to_line() + '{"iter": 200, "mi": [[0.')
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        mon = await open_monitor(app, pilot, run)
        heat = mon.query_one(MIHeatmap)
        await wait_for(pilot, lambda: heat.display and heat.matrix is not None, 10, "the map")
        assert shown(heat) == 0.2 and heat.caption.startswith("probe @ 100 (latest)")

        with open(run.probes_path, "w") as fh:  # the torn line completed, then one more row
            fh.write("".join(probe(i, s).to_line() for i, s in ((100, 0.2), (200, 0.5),
                                                                 (300, 0.8))))
        await wait_for(pilot, lambda: heat.matrix and shown(heat) == 0.8, 10, "the new probe")
        assert heat.caption.startswith("probe @ 300 (latest) MIG 0.27")
        lines = str(heat.render()).split("\n")
        assert lines[0].startswith("probe @ 300")
        assert lines[1].split() == ["MI/H", "shap", "scal", "posX"]
        assert lines[2].split()[:2] == ["z0", ".80"]
        curve = mon.query_one("#plot-mig", CurvePlot)
        assert curve.display and curve._xs.tolist() == [100, 200, 300]

        await pilot.press("left_square_bracket")
        assert shown(heat) == 0.5 and heat.caption.startswith("probe @ 200 (2/3)")
        await pilot.press("left_square_bracket", "left_square_bracket")  # stops at the first
        assert shown(heat) == 0.2 and heat.caption.startswith("probe @ 100 (1/3)")
        with open(run.probes_path, "a") as fh:  # a new probe while looking back: stay there
            fh.write(probe(400, 0.9).to_line())
        await wait_for(pilot, lambda: len(mon.probes) == 4, 10, "the fourth probe")
        assert shown(heat) == 0.2 and heat.caption.startswith("probe @ 100 (1/4)")
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert shown(heat) == 0.9 and heat.caption.startswith("probe @ 400 (latest)")
