"""New-run form: fields from the schema (widgets from its hints, rows from its objectives),
inline validation marked on the field each error names, launch refused while invalid, the
equivalent command in the CLI's spelling, and the device picker with a stand-in NVML and with
none."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import typer
from textual.app import App
from typer.testing import CliRunner

import bvae_tui.engine.runs.devices
from bvae_tui.cli.main import app as cli_app
from bvae_tui.engine.config import PRESETS, WIDGETS, TrainConfig, field_info, schema
from bvae_tui.engine.errors import ConfigError
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens import new_run
from bvae_tui.tui.screens.confirm import ConfirmScreen
from bvae_tui.tui.screens.new_run import NewRunScreen, command_line
from bvae_tui.tui.widgets.dataset_select import DatasetField
from bvae_tui.tui.widgets.device_picker import DeviceField, DevicePicker
from bvae_tui.tui.widgets.field_widgets import (
    FIELD_WIDGETS,
    ChoiceField,
    TextField,
    ToggleField,
    field_widget,
)
from tests.tui_helpers import wait_for

GIB = 1024**3


class FakeNvml:
    """The pynvml calls engine/runs/devices.py makes, for two GPUs with different free memory."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.gpus = [("Fake A100", 10 * GIB, 40 * GIB, 97), ("Fake H100", 70 * GIB, 80 * GIB, 3)]

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:  # noqa: N802
        return self.gpus[h][0].encode()

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:  # noqa: N802
        _, free, total, _ = self.gpus[h]
        return SimpleNamespace(free=free, total=total, used=total - free)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(gpu=self.gpus[h][3], memory=0)


def _no_nvml():
    raise ImportError("No module named 'pynvml'")


async def _open_form(app, pilot, picker: bool = True) -> NewRunScreen:
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
    form = app.screen
    if picker:
        await wait_for(pilot, lambda: form.query_one(DevicePicker).loaded, 10, "the devices")
    return form


async def test_form_is_the_schema_and_validation_is_inline(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        # One widget per schema field, nothing more, nothing less.
        names = {w.id[2:] for w in form.query("*") if w.id and w.id.startswith("f-")
                 and w.id != "f-folder"}
        assert names == {f.name for f in schema()}
        assert form.revalidate()

        form.set_field("beta", "-1")
        form.set_field("z_dim", "ten")
        form.set_field("lr", "0")
        await pilot.pause()
        assert not form.revalidate()
        assert set(form.errors) == {"beta", "z_dim", "lr"}
        err = form.query_one("#err-beta")
        assert err.display and "--beta must be at least 0" in str(err.render())
        assert "--z-dim must be a whole number" in str(form.query_one("#err-z_dim").render())
        assert not form.query_one("#err-gamma").display

        await pilot.press("ctrl+r")  # refused: nothing is created
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)
        assert not any(runs_dir.iterdir())

        form.set_field("beta", "6")
        form.set_field("z_dim", "6")
        form.set_field("lr", "0.0005")
        form.set_field("dataset", "dsprites-mini")
        form.set_field("iterations", "1e4")
        await pilot.pause()
        assert form.revalidate(), form.errors
        command = str(form.query_one("#form-command").render())
        assert command.startswith("bvae train --detach")
        for part in ("--dataset dsprites-mini", "--beta 6", "--z-dim 6", "--lr 0.0005",
                     "--iterations 10000", "--device cpu"):
            assert part in command
        assert form.config().beta == 6.0

        # A preset fills its values in; the command names it instead of repeating them. It
        # would change the dataset typed above: it asks, and "no" keeps that edit.
        form.set_field("beta", "4")
        form.query_one("#preset").value = "dsprites-B"
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                               and app.screen, 5, "the preset's question")
        assert "dataset" in str(modal.question) and "lr" not in str(modal.question)
        await pilot.press("n")
        await pilot.pause()
        assert form.revalidate()
        assert form.values["objective"] == "B"
        assert form.values["dataset"] == "dsprites-mini"  # kept
        assert form.values["lr"] == 0.0005 and form.values["z_dim"] == 6  # edits kept
        assert form.values["gamma"] == PRESETS["dsprites-B"]["gamma"]
        command = str(form.query_one("#form-command").render())
        assert "--preset dsprites-B" in command and "--gamma" not in command

        form.set_field("dataset", "folder:")  # a folder dataset without its path
        await pilot.pause()
        assert form.query_one("#row-folder").display
        assert not form.revalidate()
        assert "needs a path" in form.errors["dataset"]


async def test_device_picker_lists_gpus_from_nvml(runs_dir, tmp_path, monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", lambda: fake)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(110, 40)) as pilot:
        form = await _open_form(app, pilot)
        picker = form.query_one(DevicePicker)
        assert picker.options() == ["auto", "cuda:0", "cuda:1", "cpu"]
        labels = dict(picker._shown)
        assert "Fake A100" in labels["cuda:0"] and "10.0/40.0 GB free" in labels["cuda:0"]
        assert "util 97%" in labels["cuda:0"]
        assert "Fake H100" in labels["cuda:1"] and "70.0/80.0 GB free" in labels["cuda:1"]
        assert "(GPU 1)" in labels["auto"]  # auto names the GPU with most free memory
        assert picker.query_one(".reason").display is False

        # Picking a GPU with the keyboard puts it into the config and the command.
        picker.query_one("OptionList").focus()
        await pilot.press("down")
        await pilot.pause()
        assert picker.value == "cuda:0"
        assert form.revalidate() and form.values["device"] == "cuda:0"
        assert "--device cuda:0" in str(form.query_one("#form-command").render())

        # The list refreshes: memory frees up on GPU 0 and the label follows.
        fake.gpus[0] = ("Fake A100", 39 * GIB, 40 * GIB, 0)
        picker.refresh_devices()
        await wait_for(pilot, lambda: "39.0/40.0" in dict(picker._shown)["cuda:0"], 10,
                       "the refreshed memory")
        assert picker.value == "cuda:0"


async def test_device_picker_without_nvml(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        picker = form.query_one(DevicePicker)
        assert picker.options() == ["cpu"]
        reason = str(picker.query_one(".reason").render())
        assert "nvidia-ml-py" in reason
        assert "\n" not in reason
        assert form.revalidate() and form.values["device"] == "cpu"


async def test_focus_is_marked_and_q_does_not_quit_the_form(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        dataset = form.query_one("#f-dataset Select")  # the dataset field's focusable control
        objective = form.query_one("#f-objective")
        assert app.focused is dataset
        await pilot.pause()
        # The focused control carries an accent bar; the others do not.
        assert dataset.styles.border_left[0] == "wide"
        assert objective.styles.border_left[0] != "wide"
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is objective and objective.styles.border_left[0] == "wide"
        assert dataset.styles.border_left[0] != "wide"
        # q on a select (or checkbox) keeps the form; esc goes back.
        form.set_field("z_dim", "7")
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and app.screen is form
        assert form.query_one("#f-z_dim").value == "7"
        checkbox = next(iter(form.query("Checkbox")))
        checkbox.focus()
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and app.screen is form
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NewRunScreen)


async def test_folder_dataset_must_be_an_existing_folder(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path)
    launches = []
    app.launch_run = lambda *a, **k: launches.append(a)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("dataset", f"folder:{tmp_path / 'no-such-folder'}")
        await pilot.pause()
        assert not form.revalidate()
        assert "does not exist" in form.errors["dataset"]
        assert "does not exist" in str(form.query_one("#err-dataset").render())
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not launches and app.screen is form
        (tmp_path / "a-file").write_text("x")
        form.query_one("#f-folder").value = str(tmp_path / "a-file")
        await pilot.pause()
        assert "is not a folder" in form.errors["dataset"]
        form.query_one("#f-folder").value = str(tmp_path)
        await pilot.pause()
        assert "dataset" not in form.errors
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert len(launches) == 1


async def test_the_widget_comes_from_the_hint_not_the_name(tmp_path):
    assert set(FIELD_WIDGETS) == set(WIDGETS)
    dataset, amp = field_info("dataset"), field_info("amp")
    async with App().run_test():  # widgets are built inside a running app
        assert isinstance(field_widget(dataset, tmp_path), DatasetField)
        assert isinstance(field_widget(amp, tmp_path), ChoiceField)
        # Same names, other hints: the hint decides.
        assert isinstance(field_widget(replace(dataset, widget="text"), tmp_path), TextField)
        assert isinstance(field_widget(replace(amp, widget="text"), tmp_path), TextField)
        assert isinstance(field_widget(replace(field_info("seed"), widget="device"), tmp_path),
                          DeviceField)
        assert isinstance(field_widget(replace(field_info("beta"), widget="toggle"),
                                       tmp_path), ToggleField)
        with pytest.raises(ValueError, match="no widget for hint 'slider'"):
            field_widget(replace(amp, widget="slider"), tmp_path)


async def test_form_builds_a_hinted_field_with_its_widget(runs_dir, tmp_path, monkeypatch):
    # The device field with a plain "text" hint: the form shows an entry, and the schema's
    # device check still marks it.
    fields = [replace(f, widget="text") if f.name == "device" else f for f in schema()]
    monkeypatch.setattr(new_run, "schema", lambda: fields)
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot, picker=False)
        device = form.query_one("#f-device")
        assert isinstance(device, TextField) and not form.query(DevicePicker)
        assert device.value == "auto" and form.revalidate()
        device.value = "gpu"
        await pilot.pause()
        assert set(form.errors) == {"device"}
        assert "--device must be cpu, cuda:N or auto" in str(form.query_one("#err-device")
                                                              .render())


async def test_form_marks_the_field_the_error_names(runs_dir, tmp_path, monkeypatch):
    # A check on two fields at once (none such exists yet): its error goes under the field it
    # names, whatever its text; one that names no field goes to the summary line.
    validate = TrainConfig.validate
    named: dict[str, str | None] = {"field": "seed"}

    def validate_pair(cfg: TrainConfig) -> TrainConfig:
        if cfg.batch_size == 7 and cfg.seed == 3:
            raise ConfigError("seven and three do not mix", field=named["field"])
        return validate(cfg)

    monkeypatch.setattr(TrainConfig, "validate", validate_pair)
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("batch_size", "7")
        form.set_field("seed", "3")
        await pilot.pause()
        assert not form.revalidate()
        assert form.errors == {"seed": "seven and three do not mix"}
        assert "seven and three" in str(form.query_one("#err-seed").render())
        assert not form.query_one("#err-batch_size").display
        named["field"] = None
        assert not form.revalidate() and form.errors == {}
        assert "seven and three" in str(form.query_one("#form-error").render())


async def test_form_shows_only_the_chosen_objectives_fields(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)

        def shown() -> set[str]:
            return {f.name for f in schema() if form.query_one(f"#row-{f.name}").display}

        assert {"beta", "recon"} <= shown() and not {"gamma", "c_max", "c_stop_iter"} & shown()
        form.set_field("objective", "B")
        await pilot.pause()
        assert {"gamma", "c_max", "c_stop_iter", "recon"} <= shown() and "beta" not in shown()
        # A hidden field that blocks launch is shown, so that it can be fixed.
        form.set_field("beta", "-1")
        await pilot.pause()
        assert "beta" in shown() and "beta" in form.errors
        form.set_field("beta", "4")
        await pilot.pause()
        assert "beta" not in shown() and form.revalidate()
        form.set_field("objective", "H")
        await pilot.pause()
        assert "beta" in shown() and "gamma" not in shown()


def test_no_option_spellings_match_between_cli_help_and_form_command():
    result = CliRunner().invoke(cli_app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    train = typer.main.get_command(cli_app).commands["train"]  # type: ignore[attr-defined]
    opts = {p.name: p for p in train.params}
    bools = [f for f in schema() if f.type is bool]
    assert bools
    for info in bools:
        # The form turns a field off that a preset (here: the default) turned on.
        on_by_default = [replace(f, default=True) if f is info else f for f in schema()]
        command = command_line(on_by_default, {info.name: False}, None, None)
        assert command.split()[3:] == [info.negative_option]
        assert opts[info.name].secondary_opts == [info.negative_option]
        assert info.negative_option in result.output
        assert command_line(schema(), {info.name: True}, None, None).split()[3:] == \
            [info.option]
