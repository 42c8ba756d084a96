"""The latent x factor information matrix: read from eval.json, drawn in the monitor under the
KL bars, exported as a PNG (`bvae export mi RUN`), and every score in the scores modal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from textual.widgets import DataTable
from typer.testing import CliRunner

from bvae_tui.engine.analysis.mi_matrix import MIMatrix, share_text
from bvae_tui.engine.errors import RunError
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.scores import ScoresScreen
from bvae_tui.tui.widgets.mi_heatmap import MIHeatmap
from tests.tui_helpers import make_run, open_monitor, wait_for

FACTORS = ["shape", "scale", "orientation", "posX", "posY"]
ENTROPY = [1.0986, 1.7918, 3.6889, 3.4657, 3.4657]


def _nats(z_dim: int = 4) -> list[list[float]]:
    """Latent i carries most of factor i (the last latents little of anything)."""
    shares = np.full((z_dim, 5), 0.01)
    for i in range(min(z_dim, 5)):
        shares[i, i] = 0.9 - 0.2 * i
    return (shares * np.array(ENTROPY)).tolist()


def _eval(**extra) -> dict:
    return {"scores": {"betavae": 0.81, "factorvae": 0.7, "mig": 0.2, "dci": 0.31,
                       "sap": 0.05, "modularity": 0.8, "explicitness": 0.77, "udr": 0.4},
            "factors": FACTORS, "mi": _nats(), "factor_entropy": ENTROPY, "iteration": 300,
            **extra}


def test_matrix_from_results():
    m = MIMatrix.from_result(_eval())
    assert m is not None and m.latents == 4 and m.factors == FACTORS
    shares = m.shares()
    assert shares[0][0] == pytest.approx(0.9) and shares[3][3] == pytest.approx(0.3)
    assert m.main_factor(1) == 1
    assert [share_text(v) for v in (0.0, 0.004, 0.5, 0.999)] == ["·", "·", ".50", "1.0"]
    # Missing, ragged or non-finite matrices read as none (a damaged or older eval.json).
    for bad in ({"mi": None}, {"mi": [[1.0, 2.0]], "factor_entropy": ENTROPY},
                {"mi": [[float("nan")] * 5], "factor_entropy": ENTROPY}):
        assert MIMatrix.from_result({**_eval(), **bad}) is None


async def test_heat_map_under_the_kl_bars(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "scored", "finished")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        mon = await open_monitor(app, pilot, run)
        heat = mon.query_one(MIHeatmap)
        assert not heat.display  # not evaluated yet
        run.eval_path.write_text(json.dumps(_eval()))
        await wait_for(pilot, lambda: heat.display and heat.matrix is not None, 10, "the map")
        await pilot.pause()
        lines = str(heat.render()).split("\n")
        assert lines[0].split() == ["MI/H", "shap", "scal", "orie", "posX", "posY"]
        assert [line.split()[0] for line in lines[1:]] == ["z0", "z1", "z2", "z3"]
        assert lines[1].split()[1] == ".90" and lines[4].split()[4] == ".30"
        bars = mon.query_one("#mon-latents")
        assert heat.region.y > bars.region.y and heat.region.x >= bars.region.x
        assert heat.region.right <= 100
        # An evaluation without the matrix (e.g. `--metrics dci` only) hides it again.
        run.eval_path.write_text(json.dumps({"scores": {"dci": 0.3}}))
        await wait_for(pilot, lambda: not heat.display, 10, "the map to go")


async def test_scores_modal_shows_every_metric(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "all-metrics", "finished")
    run.eval_path.write_text(json.dumps(_eval()))
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows, 10, "the run")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), 5, "scores")
        table = app.screen.query_one(DataTable)
        header = [str(c.label) for c in table.columns.values()]
        assert header[2:] == ["BV", "FV", "MIG", "DCI", "SAP", "Mod", "Expl", "UDR"]
        row = [str(c) for c in table.get_row_at(0)]
        assert row[2:] == ["0.810", "0.700", "0.200", "0.310", "0.050", "0.800", "0.770",
                           "0.400"]


def test_export_mi_png(runs_dir, tmp_path):
    from bvae_tui.engine.analysis.export import export_mi
    from bvae_tui.engine.analysis.heatmap import CELL_H, SCALE_H, TOP

    run = make_run(runs_dir, tmp_path, "png", "finished")
    with pytest.raises(RunError, match="has no eval.json; score it first") as info:
        export_mi(run)
    assert "\n" not in str(info.value)
    run.eval_path.write_text(json.dumps({"scores": {"dci": 0.3}}))
    with pytest.raises(RunError, match="no information matrix"):
        export_mi(run)
    run.eval_path.write_text(json.dumps(_eval()))
    path = export_mi(run)
    assert path == run.exports_dir / "mi-it300.png"
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[0] == TOP + 4 * CELL_H + SCALE_H
    # z0's shape cell is bright (0.9 of the factor), z0's scale cell dark (0.01).
    from bvae_tui.engine.analysis.heatmap import CELL_W, LEFT

    bright = pixels[TOP + 2, LEFT + 2].astype(int).sum()
    dark = pixels[TOP + 2, LEFT + CELL_W + 2].astype(int).sum()
    assert bright > dark + 200


def test_cli_export_mi(runs_dir, tmp_path):
    from bvae_tui.cli.main import app

    run = make_run(runs_dir, tmp_path, "cli-png", "finished")
    run.eval_path.write_text(json.dumps(_eval()))
    out = tmp_path / "heat.png"
    res = CliRunner().invoke(app, ["export", "mi", "cli-png", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out) and out.stat().st_size > 0
    res = CliRunner().invoke(app, ["export", "mi", "cli-png", "-o", str(tmp_path / "x.gif")])
    assert res.exit_code == 1 and "must end in .png" in res.output
