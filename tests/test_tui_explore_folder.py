"""The Explore screen's factor picker on a folder:PATH dataset with a factors.csv (issue 22): it
lists the csv's factors, finds the image with the classes typed, and says in the form when a
combination has no image (an incomplete grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.explore import ExploreScreen
from bvae_tui.tui.screens.explore_pick import PickImageScreen
from tests.folder_helpers import colour_of, make_folder
from tests.test_explore import Z, _checkpoint
from tests.tui_helpers import wait_for


@pytest.fixture(autouse=True)
def _threads_back():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _folder_run(runs_dir, tmp_path, levels, names, name, drop=()):
    """A run (with a checkpoint) on a folder of renders with a factors.csv; (run, data dir)."""
    from bvae_tui.datasets.prepare import prepare
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    folder, data = tmp_path / "renders", tmp_path / "data"
    make_folder(folder, levels, names=names, drop=list(drop))
    prepare(f"folder:{folder}", data)
    cfg = make_config(dataset=f"folder:{folder}", z_dim=Z, iterations=10, device="cpu")
    run = create_run(runs_dir, cfg, data, name=name)
    _checkpoint(run, cfg, channels=3)
    return run, data


async def _open_picker(app, pilot, run):
    """The explore screen on ``run`` after its first decode, and its image picker ("g")."""
    app.push_screen(ExploreScreen(run.path, app.data_root))
    screen = await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen)
                            and app.screen, 10, "the explore screen")
    await wait_for(pilot, lambda: screen.view is not None and not screen.busy, 30,
                   "the first decode")
    await pilot.press("g")
    form = await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen)
                          and app.screen, 5, "the form")
    return screen, form


async def test_factor_picker_on_a_folder_with_factors(runs_dir, tmp_path):
    run, data = _folder_run(runs_dir, tmp_path, ([0, 1, 2], [0, 15, 30]), ("light", "azimuth"),
                            "tui-ff", drop=[(1, 15)])
    app = BvaeApp(run.path.parent, data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await _open_picker(app, pilot, run)
        assert [n for n, _ in form.factors] == ["light", "azimuth"]
        form.query_one("#pick-f0").value = "2"
        form.query_one("#pick-f1").value = "2"  # azimuth's third level: 30
        form.query_one("#pick-f1").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, 5, "back to explore")
        ds = screen.explorer.dataset
        await wait_for(pilot, lambda: screen.view is not None and not screen.busy
                       and ds.classes[screen.index].tolist() == [2, 2], 20, "the new source")
        assert ds.values[screen.index].tolist() == [2, 30]
        pixel = tuple(int(v) for v in ds.images_at([screen.index])[0][:, 32, 32])
        assert pixel == colour_of((2, 30))
        assert np.array_equal(screen.view.source, ds.float_images_at([screen.index])[0])
        # (light 1, azimuth 15) has no image: said in the form, which stays open.
        await pilot.press("g")
        form = await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen)
                              and app.screen, 5, "the form")
        form.query_one("#pick-f0").value = "1"
        form.query_one("#pick-f1").value = "1"
        form.query_one("#pick-f1").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is form
        assert "no image has the factor classes" in str(form.query_one("#pick-error").render())
        await pilot.press("escape")


async def test_factor_names_with_brackets_are_text_in_the_picker(runs_dir, tmp_path):
    """factors.csv's header is the lab's text: '[/]shape' is a name, not markup (Textual
    parsed the picker's label and raised a MarkupError)."""
    run, data = _folder_run(runs_dir, tmp_path, ([0, 1], [0, 1, 2]), ("[/]shape", "[b]light"),
                            "tui-brackets")
    app = BvaeApp(run.path.parent, data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await _open_picker(app, pilot, run)
        await pilot.pause()
        from textual.widgets import Label

        shown = [str(label.render()) for label in form.query(Label)]
        assert "[/]shape" in shown and "[b]light" in shown, shown
        await pilot.press("escape")
        await pilot.press("v")  # the inverse view steps a factor: its title names it
        await wait_for(pilot, lambda: screen.response is not None, 30, "the response")
        await pilot.pause()
