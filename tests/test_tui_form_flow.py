"""The new-run form's flow: a preset leaves edits alone, esc asks before discarding edits, the
name placeholder is the name the run gets, a huge grid is confirmed in the form (and previewed
as its range), the dataset hint and choices say what there is and what launching does."""

from __future__ import annotations

import bvae_tui.engine.runs.devices
from bvae_tui.engine.runs.store import default_name
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.confirm import ConfirmScreen
from bvae_tui.tui.screens.new_run import NewRunScreen
from tests.test_tui_new_run import _no_nvml, _open_form
from tests.tui_helpers import wait_for


async def test_esc_asks_before_discarding_edits(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        await pilot.press("escape")  # nothing edited: straight back
        await wait_for(pilot, lambda: not isinstance(app.screen, NewRunScreen), 5, "back")
        form = await _open_form(app, pilot)
        form.set_field("beta", "6")
        await pilot.pause()
        assert form.edited() == ["beta"]
        await pilot.press("escape")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                               and app.screen, 5, "the question")
        assert "beta" in str(modal.question)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is form, 5, "still the form")
        assert form.values["beta"] == 6.0  # nothing lost
        await pilot.press("escape", "y")
        await wait_for(pilot, lambda: not isinstance(app.screen, (NewRunScreen, ConfirmScreen)),
                       5, "discarded")


async def test_preset_applies_to_untouched_fields_and_asks_about_edited_ones(
        runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("z_dim", "6")  # the preset does not set it: kept without a question
        await pilot.pause()
        form.query_one("#preset").value = "dsprites-B"
        await pilot.pause(0.5)
        await wait_for(pilot, lambda: form.values.get("objective") == "B", 5, "the preset")
        assert not isinstance(app.screen, ConfirmScreen)
        assert form.values["z_dim"] == 6 and form.values["gamma"] == 100.0
        form.set_field("gamma", "50")  # now an edit the next preset would change
        await pilot.pause()
        form.query_one("#preset").value = "dsprites-B-paper"
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                               and app.screen, 5, "the question")
        assert "gamma" in str(modal.question)
        await pilot.press("y")  # overwrite
        await wait_for(pilot, lambda: form.values.get("gamma") == 1000.0, 5, "overwritten")
        assert form.values["c_max"] == 25.0


async def test_placeholder_is_the_name_the_run_gets(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("objective", "factor")
        form.set_field("gamma_tc", "40")
        await pilot.pause()
        assert form.revalidate()
        name = default_name(form.config())
        assert "factor" in name
        assert form.query_one("#run-name").placeholder == f"default: {name}"


async def test_a_huge_grid_is_confirmed_in_the_form_and_previewed_as_a_range(
        runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    launched: list[tuple[int, bool]] = []
    monkeypatch.setattr(app, "launch_sweep", lambda spec, on_launched=None, yes=False:
                        launched.append((spec.count(), yes)))
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("seed", "1..20000")
        await pilot.pause()
        assert form.revalidate(), form.errors
        command = str(form.query_one("#form-command").render())
        assert "a sweep of 20,000 members" in command and "asks first" in command
        assert "--seed 1..20000" in command and "1,2,3,4,5,6,7,8,9" not in command
        await pilot.press("ctrl+r")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                               and app.screen, 5, "the question")
        assert "20,000" in str(modal.question)
        await pilot.press("n")
        await pilot.pause()
        assert launched == [] and not any(runs_dir.iterdir())
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "asked again")
        await pilot.press("y")
        await wait_for(pilot, lambda: launched, 5, "the launch")
        assert launched == [(20_000, True)]  # the CLI's --yes, given in the form


async def test_dataset_hint_and_choices_say_what_launching_does(runs_dir, tmp_path,
                                                                monkeypatch):
    from textual.widgets import Label, Select, Static

    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        form.inputs["dataset"].focus()
        await pilot.pause()
        hint = str(form.query_one("#form-hint", Static).render())
        assert "shapes3d" in hint and "celeba" in hint
        select = form.inputs["dataset"].query_one(Select)
        labels = {value: str(label) for label, value in select._options}
        assert "bvae data download celeba first" in labels["celeba"]
        assert "bvae data download shapes3d, 268 MB first" in labels["shapes3d"]
        assert "launching builds it" in labels["dsprites"]
        label = next(w for w in form.query(Label) if str(w.render()) == "checkpoint_minutes")
        assert label.content_region.width >= len("checkpoint_minutes")  # no wrap
