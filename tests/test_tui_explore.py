"""The Explore screen through Pilot: moving a latent changes the decode and `r` restores the first
one exactly; the factor form finds the image with those classes; holding → never queues decodes;
the inverse view's bars are the difference of the encoder means (and what `bvae explore
--respond` prints); bad runs are notifications and the screen stays usable.

Untrained (seeded) models: every equality holds by construction, on any CPU.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bvae_tui.engine.analysis import explore as ex
from bvae_tui.engine.analysis import visualise as vis
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.explore import ExploreScreen
from bvae_tui.tui.screens.explore_pick import PickImageScreen
from bvae_tui.tui.widgets.response_bars import ResponseBars
from tests.test_explore import Z, _checkpoint
from tests.tui_helpers import screen_lines, wait_for


@pytest.fixture(autouse=True)
def _threads_back():
    """The explorer sets the process to one torch thread (its own processes train nothing):
    the rest of the suite gets its threads back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run(runs_dir, env_data):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10, device="cpu")
    run = create_run(runs_dir, cfg, env_data, name="tui-ex")
    _checkpoint(run, cfg)
    return run


def _recorder(app: BvaeApp) -> list[str]:
    said: list[str] = []
    notify = app.notify

    def record(message, *args, **kwargs):
        said.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    return said


async def _open(app: BvaeApp, pilot, run) -> ExploreScreen:
    app.push_screen(ExploreScreen(run.path, app.data_root))
    screen = await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen) and app.screen,
                            10, "the explore screen")
    await wait_for(pilot, lambda: screen.view is not None and not screen.busy, 30,
                   "the first decode")
    return screen


async def _settled(pilot, screen: ExploreScreen, what: str = "decodes") -> None:
    await wait_for(pilot, lambda: not screen.busy and screen.view is not None
                   and np.array_equal(screen.view.code, screen.code), 30, what)


async def test_moving_a_latent_changes_the_decode_and_r_restores_it(run, env_data):
    app = BvaeApp(run.path.parent, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        first = screen.view.edited.copy()
        latent = screen.latent
        assert latent == screen.explorer.order[0]  # the most informative latent first
        await pilot.press("right", "right", "shift+right")
        await _settled(pilot, screen)
        assert screen.code[latent] == pytest.approx(screen.base[latent] + 1.5, abs=1e-6)
        assert not np.array_equal(screen.view.edited, first)
        await pilot.press("r")
        await _settled(pilot, screen)
        assert np.array_equal(screen.code, screen.base)
        assert np.array_equal(screen.view.edited, first)
        await pilot.press("0")
        await _settled(pilot, screen)
        assert screen.code[latent] == 0.0
        await pilot.press("down", "left")
        await _settled(pilot, screen)
        assert screen.latent == screen.explorer.order[1]
        lines = screen_lines(app)
        assert "source · recon · edited" in lines[1] and "explore" in lines[0]
        assert any(line.startswith("▸ z") for line in lines)  # the cursor on a latent


async def test_factor_form_finds_the_image_with_those_classes(run, env_data):
    app = BvaeApp(run.path.parent, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        await pilot.press("g")
        form = await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen)
                              and app.screen, 5, "the form")
        form.query_one("#pick-f1").value = "heart"
        form.query_one("#pick-f2").value = "0"
        form.query_one("#pick-f4").value = "6"
        form.query_one("#pick-f2").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, 5, "back to explore")
        await wait_for(pilot, lambda: screen.view is not None and screen.view.index != 1060
                       and not screen.busy, 20, "the new source")
        ds = screen.explorer.dataset
        classes = ds.classes[screen.index].tolist()
        assert classes[1:5] == [2, 0, 0, 6]  # orientation kept from the first image (0)
        assert np.array_equal(screen.view.source, ds.float_images_at([screen.index])[0])
        # A class out of range is said in the form, which stays open.
        await pilot.press("g")
        form = await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen)
                              and app.screen, 5, "the form")
        form.query_one("#pick-f4").value = "8"
        form.query_one("#pick-f4").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is form
        assert "posX=8 is out of range" in str(form.query_one("#pick-error").render())
        await pilot.press("escape")


async def test_holding_right_never_queues_decodes(run, env_data, monkeypatch):
    """The decode is held until released: 50 presses meanwhile start no more decodes, and the
    one that follows draws the newest code (latest wins)."""
    app = BvaeApp(run.path.parent, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        started, drawn = screen.started, screen.drawn
        gate = threading.Event()
        real_view = screen.explorer.view

        def held_view(*args, **kwargs):
            gate.wait(30)
            return real_view(*args, **kwargs)

        monkeypatch.setattr(screen.explorer, "view", held_view)
        await pilot.press(*["right"] * 50)
        assert screen.started - started == 1  # only the first press started one
        assert screen.started - screen.drawn <= 1
        gate.set()
        await _settled(pilot, screen)
        assert screen.started - started == 2 and screen.drawn - drawn == 2
        assert screen.max_pending <= 1
        want = screen.base[screen.latent] + 50 * 0.25
        assert screen.view.code[screen.latent] == pytest.approx(want, abs=1e-4)


async def test_inverse_view_is_the_difference_of_the_encoder_means(run, env_data):
    app = BvaeApp(run.path.parent, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.response is not None, 20, "the inverse view")
        r = screen.response
        assert r.factor == "shape" and r.index == screen.index
        model = screen.explorer.model
        ds = screen.explorer.dataset
        x = torch.from_numpy(ds.float_images_at([r.index, r.to_index]))
        mu = vis.encode_means(model, x).numpy()
        bars = screen.query_one(ResponseBars)
        want = [float(mu[1, k] - mu[0, k]) for k in screen.explorer.order]
        assert np.allclose(bars.values, want, atol=1e-5)
        assert ds.classes[r.to_index].tolist()[1] == ds.classes[r.index].tolist()[1] + 1
        # `f` steps another factor; `bvae explore --respond` prints the same numbers.
        await pilot.press("f", "f", "f")  # shape -> scale -> orientation -> posX
        await wait_for(pilot, lambda: screen.response is not None
                       and screen.response.factor == "posX", 20, "posX")
        from bvae_tui.cli.main import app as cli

        result = CliRunner().invoke(cli, ["explore", run.id, "--image", str(screen.index),
                                          "--respond", "posX", "--json"])
        assert result.exit_code == 0, result.output
        printed = {d["latent"]: d["delta"] for d in json.loads(result.stdout)["respond"]
                   ["latents"]}
        assert np.allclose([printed[f"z{k}"] for k in screen.explorer.order],
                           screen.query_one(ResponseBars).values, atol=1e-6)
        assert any("Δ mean" in line for line in screen_lines(app))


async def test_save_writes_png_and_gif_into_exports(run, env_data):
    app = BvaeApp(run.path.parent, env_data)
    said = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot, run)
        await pilot.press("e")
        await wait_for(pilot, lambda: any(s.startswith("wrote") for s in said), 20, "saved")
    names = sorted(p.suffix for p in run.exports_dir.iterdir())
    assert names == [".gif", ".png"]


async def test_reload_takes_a_newer_checkpoint(run, env_data):
    from bvae_tui.engine.config import make_config

    app = BvaeApp(run.path.parent, env_data)
    said = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        await pilot.press("R")
        await pilot.pause()
        assert any("no newer checkpoint" in s for s in said)
        _checkpoint(run, make_config(dataset="dsprites-mini", z_dim=Z), seed=1, iteration=9)
        await pilot.press("R")
        await wait_for(pilot, lambda: screen.explorer.iteration == 9 and not screen.busy, 20,
                       "the newer checkpoint")
        await _settled(pilot, screen)


async def test_a_run_without_checkpoint_is_a_notification(runs_dir, env_data):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    run = create_run(runs_dir, make_config(dataset="dsprites-mini", z_dim=Z), env_data,
                     name="none")
    app = BvaeApp(runs_dir, env_data)
    said = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ExploreScreen(run.path, env_data))
        await wait_for(pilot, lambda: any("no checkpoint yet" in s for s in said), 20,
                       "the notification")
        screen = app.screen
        await pilot.press("right", "n", "v", "e")  # nothing to move: said, not raised
        await pilot.pause()
        assert isinstance(app.screen, ExploreScreen) and screen.explorer is None
        await pilot.press("escape")
        assert not isinstance(app.screen, ExploreScreen)


async def test_without_the_dataset_it_explores_prior_codes(runs_dir, tmp_path, monkeypatch):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    empty = tmp_path / "nodata"
    empty.mkdir()
    monkeypatch.setenv("BVAE_DATA_DIR", str(empty))
    cfg = make_config(dataset="dsprites-mini", z_dim=Z)
    run = create_run(runs_dir, cfg, empty, name="nodata")
    _checkpoint(run, cfg)
    app = BvaeApp(runs_dir, empty)
    said = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot, run)
        assert screen.index is None and screen.view.source is None
        assert any("bvae data prepare dsprites-mini" in s for s in said)
        assert np.array_equal(screen.base, screen.explorer.prior_code(0))
        await pilot.press("n", "g")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("s")
        await wait_for(pilot, lambda: not np.array_equal(screen.base, ex.Explorer.prior_code(
            screen.explorer, 0)), 10, "another prior code")
        await _settled(pilot, screen)


async def test_x_opens_explore_from_the_runs_table_and_the_monitor(run, env_data):
    from bvae_tui.tui.screens.monitor import MonitorScreen
    from bvae_tui.tui.screens.runs import RunsScreen

    app = BvaeApp(run.path.parent, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen)
                              and app.screen.loaded and app.screen, 10, "the runs table")
        await pilot.pause(0.3)
        assert "x Explore" in screen_lines(app)[-1]  # in the footer at 80 columns
        await pilot.press("x")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen)
                                and app.screen, 10, "explore from the runs")
        assert screen.run.path == run.path
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, 5, "back to the runs")
        app.open_monitor(run.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        await pilot.pause(0.3)
        assert "| `x` | explore" in app.screen.HELP  # its footer is full at 80 columns
        await pilot.press("x")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen)
                                and app.screen, 10, "explore from the monitor")
        await wait_for(pilot, lambda: screen.view is not None, 30, "the first decode")
