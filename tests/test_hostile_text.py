"""Run data is shown as text (HARDENING items 5 and 11): a run name, device, data dir, config
value, eval key, error or runs-dir path holding rich/Textual markup (``[/]``) or escape
sequences must neither crash a face (MarkupError) nor reach the terminal (ESC, BEL); the CLI
and the TUI show ``[/]`` literally and control characters as visible stand-ins."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import DataTable, Input
from textual.widgets._toast import Toast
from typer.testing import CliRunner

import bvae_tui.engine.runs.devices
from bvae_tui.cli import eval_tables
from bvae_tui.cli.main import app as cli_app
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps import control, local
from bvae_tui.engine.runs.sweeps.store import Sweep
from bvae_tui.safe_text import as_text, markup_safe, plain
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.compare import CompareScreen
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.runs import RunsScreen
from bvae_tui.tui.screens.scores import ScoresScreen
from bvae_tui.tui.screens.sweep import SweepScreen
from bvae_tui.tui.widgets.runs_table import RunsTable
from tests.sweep_helpers import tiny_spec
from tests.test_devices import fake_nvml
from tests.test_tui_new_run import _no_nvml, _open_form
from tests.tui_helpers import make_run, metrics_row, screen_lines, wait_for

# Markup that does not parse, markup that would vanish into a style, a CSI colour and an OSC
# window title ended by BEL.
HOSTILE = "[/]x[bold]\x1b[31mred\x1b]0;title\x07"
SHOWN = "[/]x[bold]red"  # what a face shows of it
ERROR = "boom [/] \x1b[2J\x07cleared"  # a clear-screen sequence and a bell in an error
SIZE = (160, 40)


# --------------------------------------------------------------------------------------------
# The helper


def test_plain_drops_escape_sequences_and_shows_other_controls():
    assert plain(HOSTILE) == SHOWN
    assert plain(ERROR) == "boom [/] \u2407cleared"
    assert plain("a\nb\tc\rd\x00e\x7f") == "a\u240ab\u2409c\u240dd\u2400e\u2421"
    assert plain("\x9b31mX\x9d0;title\x9c!") == "X!"  # the 8-bit CSI and OSC too
    assert plain("\x1bPq#0;2;0;0;0\x1b\\ok") == "ok"  # a DCS (sixel) string, ST-terminated
    assert plain("abc\u202edef") == "abc\ufffddef"  # no text read backwards
    assert plain("x\x1b") == "x"  # a lone ESC at the end
    assert plain(None) == "" and plain(3.5) == "3.5" and plain("β=4 ✓") == "β=4 ✓"


def test_markup_safe_and_as_text_show_markup_literally():
    assert Text.from_markup(markup_safe(HOSTILE)).plain == SHOWN
    path = "C:\\runs\\"  # a trailing backslash must not escape the closing tag after it
    assert Text.from_markup("[bold]" + markup_safe(path) + "[/]").plain == path
    text = as_text(HOSTILE, "bold")
    assert text.plain == SHOWN and str(text.style) == "bold"


# --------------------------------------------------------------------------------------------
# A runs dir full of hostile text


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _hostile_config(data: dict[str, Any]) -> None:
    data.update(name=HOSTILE, data_dir="/tmp/[/]", dataset_source="files [/]")
    data["config"]["dataset"] = "folder:/tmp/[/]imgs"  # a config string with markup


EVAL = {"scores": {"[/]": 0.5, "betavae": 0.8, "mig": 0.3}, "iteration": 30,
        "dataset": "[/]ds", "factors": ["[/]f\x1b[31m", "sh[b]"],
        "mi": [[0.5, 0.1], [0.1, 0.4], [0.0, 0.0], [0.0, 0.0]], "factor_entropy": [1.0, 1.0]}


@pytest.fixture
def hostile_root(tmp_path, monkeypatch) -> Path:
    """A runs dir whose path holds ``[/]`` (folder ``[`` holding ``]runs``)."""
    root = tmp_path / "[" / "]runs"
    root.mkdir(parents=True)
    monkeypatch.setenv("BVAE_RUNS_DIR", str(root))
    return root


@pytest.fixture
def hostile(hostile_root, tmp_path) -> tuple[Run, Run]:
    """A failed run whose name, device, data dir, dataset, error, eval keys and factor names
    hold markup and escape sequences, and a plain finished run beside it."""
    bad = make_run(hostile_root, tmp_path, "hostile", "failed", error=ERROR)
    _edit(bad.config_path, _hostile_config)
    _edit(bad.status_path, lambda d: d.update(device="[/]"))
    bad.eval_path.write_text(json.dumps(EVAL))
    bad.log_path.write_text(f"step 10 {HOSTILE}\n")
    good = make_run(hostile_root, tmp_path, "good", "finished", beta=1.0)
    good.eval_path.write_text(json.dumps({"scores": {"[/]": 0.25, "betavae": 0.7}}))
    return bad, good


def _bvae(*args: str):
    return CliRunner().invoke(cli_app, list(args))


def _check_safe(result, *shown: str) -> str:
    """The command succeeded, printed no ESC or BEL, and shows each of ``shown``."""
    out = result.output
    assert result.exit_code == 0, out
    assert result.exception is None or isinstance(result.exception, SystemExit), out
    assert "\x1b" not in out and "\x07" not in out, repr(out)
    flowed = "".join(out.split())  # rich wraps long lines (80 columns here), paths mid-word
    for part in shown:
        assert "".join(part.split()) in flowed, (part, out)
    return out


# --------------------------------------------------------------------------------------------
# CLI


def test_runs_list_shows_markup_as_text(hostile):
    bad, _ = hostile
    out = _check_safe(_bvae("runs"), bad.id, "boom [/] \u2407cleared")
    line = next(line for line in out.splitlines() if line.startswith(bad.id))
    assert " [/] " in line  # the device column


def test_runs_show_prints_every_value_as_text(hostile, hostile_root):
    bad, _ = hostile
    _check_safe(_bvae("runs", "show", bad.id), f"{hostile_root}/{bad.id}",
                "boom [/] \u2407cleared", "dataset=folder:/tmp/[/]imgs",
                "data: folder:/tmp/[/]imgs (files [/]) from /tmp/[/]", "[/]=0.500")


def test_runs_json_keeps_the_raw_strings(hostile):
    bad, _ = hostile
    result = _bvae("runs", "--json")
    assert result.exit_code == 0 and "\x1b" not in result.output  # JSON escapes it: \u001b
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows[bad.id]["name"] == HOSTILE and rows[bad.id]["device"] == "[/]"
    shown = json.loads(_bvae("runs", "show", bad.id, "--json").output)
    assert shown["name"] == HOSTILE and shown["data_dir"] == "/tmp/[/]"


def test_compare_prints_labels_and_metrics_as_text(hostile):
    bad, good = hostile
    _check_safe(_bvae("compare", "--curves"), "dataset=folder:/tmp/[/]imgs", "[/]", bad.id,
                good.id)
    _check_safe(_bvae("compare", "--by", "run", "--curves", bad.id), SHOWN)  # named by name


def test_user_error_line_shows_no_escape_sequences(hostile_root):
    result = _bvae("runs", "show", "\x1b]0;pwned\x07[b]zz\x1b[2J\n")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert result.output.startswith("error: ") and "[b]zz\u240a" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _render(table: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return out.getvalue()


def test_eval_tables_show_names_and_notes_as_text():
    result = {"details": {"betavae": {"skipped": f"no factors {HOSTILE}"},
                          "mig": {"per_factor": {"[/]": 0.25}}},
              "scores": {"mig": 0.25}, "dataset": "[/]", **{k: EVAL[k] for k in (
                  "factors", "mi", "factor_entropy")}}
    text = _render(eval_tables.run_table(result, f"{HOSTILE} @ iteration 3"))
    assert f"{SHOWN} @ iteration 3" in text and f"skipped: no factors {SHOWN}" in text
    assert "[/] 0.25" in text
    info = _render(eval_tables.mi_table(result))
    assert "[/]f" in info and "sh[b]" in info
    udr = {"params": {"num_points": 10, "correlation": "[/]"}, "dataset": "[/]", "seed": 0,
           "runs": [{"run": HOSTILE, "seed": 1, "iteration": 3, "udr": 0.5,
                     "active_latents": 2, "pairwise": {}}]}
    shown = _render(eval_tables.udr_table(udr, group=HOSTILE))
    assert f"UDR of {SHOWN} on [/]" in shown and SHOWN in shown
    for rendered in (text, info, shown):
        assert "\x1b" not in rendered and "\x07" not in rendered


@pytest.fixture
def hostile_sweep(hostile_root, env_data, monkeypatch) -> Sweep:
    """A 1x2 sweep (seeds) named with markup and escapes, a failed member on device ``[/]``."""
    monkeypatch.setattr(local, "start_scheduler", lambda sweep, poll=None: 0)
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    sweep, _ = control.create(tiny_spec(30, 10, seed="1,2", device="cpu"), hostile_root,
                              env_data)
    _edit(sweep.record_path, lambda d: d.update(name=HOSTILE, devices=["[/]"]))
    first, second = sweep.members()
    with open(first.metrics_path, "w") as fh:
        for i in (10, 20, 30):
            fh.write(metrics_row(i).to_line())
    first.write_status(state="finished", iteration=30, started=time.time() - 60)
    second.write_status(state="failed", iteration=10, error=ERROR, device="[/]")
    return sweep


def test_sweeps_and_sweep_show_print_names_as_text(hostile_sweep):
    _check_safe(_bvae("sweeps"), hostile_sweep.id)
    out = _check_safe(_bvae("sweep", "show", hostile_sweep.id), hostile_sweep.id,
                      "on [/], 1 per device", "boom [/] \u2407cleared")
    assert "failed" in out


HOSTILE_GPU = [("[/]GPU\x1b[31m", 10 << 30, 40 << 30, 5)]


def test_gpus_prints_device_names_as_text(monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", lambda: fake_nvml(HOSTILE_GPU))
    _check_safe(_bvae("gpus"), "GPU 0 [/]GPU free")


@pytest.mark.usefixtures("one_thread")
def test_train_in_a_runs_dir_with_brackets(hostile_root, env_data):
    out = _check_safe(_bvae("train", "--dataset", "dsprites-mini", "--device", "cpu",
                            "--batch-size", "8", "--z-dim", "3", "--preview-every", "0",
                            "--log-every", "5", "--iterations", "10", "--name", "[/]b[i]"),
                      "finished", f"in {hostile_root}/")
    assert "-b-i" in out  # the run id (a slug of the name)


# --------------------------------------------------------------------------------------------
# TUI


def _screen_text(app: Any) -> str:
    text = "\n".join(screen_lines(app))
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    return text


def _cells(table: DataTable) -> list[str]:
    return [str(cell) for i in range(table.row_count) for cell in table.get_row_at(i)]


async def _runs_screen(app: BvaeApp, pilot: Any, count: int) -> RunsScreen:
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    await wait_for(pilot, lambda: screen.loaded and len(screen.rows) == count, 10, "the runs")
    await pilot.pause()
    return screen


async def test_runs_screen_and_scores_modal_show_markup_as_text(hostile, hostile_root):
    bad, _ = hostile
    app = BvaeApp(hostile_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _runs_screen(app, pilot, 2)
        table = screen.query_one(RunsTable)
        assert str(table.get_cell(bad.id, "name")) == SHOWN
        assert str(table.get_cell(bad.id, "dataset")).startswith("folder:/tmp/[/]imgs")
        assert "boom [/] \u2407cleared" in str(table.get_cell(bad.id, "note"))
        assert all("\x1b" not in cell for cell in _cells(table))
        table.select(bad.id)
        await pilot.pause()
        text = _screen_text(app)
        assert SHOWN in text and "on [/]" in text and f"runs in {hostile_root}" in text
        await pilot.press("p")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen)
                               and app.screen, 5, "the scores")
        assert SHOWN in _cells(modal.query_one(DataTable))
        assert SHOWN in _screen_text(app)


async def test_monitor_shows_run_values_as_text(hostile, hostile_root):
    bad, _ = hostile
    app = BvaeApp(hostile_root)
    async with app.run_test(size=SIZE) as pilot:
        await _runs_screen(app, pilot, 2)
        app.open_monitor(bad.path)
        screen = await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen)
                                and app.screen.status.state and app.screen.history.last
                                and app.screen.scores and app.screen, 10, "the monitor")
        await pilot.pause()
        text = _screen_text(app)
        assert SHOWN in text and "boom [/] \u2407cleared" in text
        assert "[/]f" in text  # the MI heat map's factor name
        assert screen.query_one("#mon-header").render()  # drew without a MarkupError


async def test_compare_screen_shows_labels_and_metrics_as_text(hostile, hostile_root):
    bad, good = hostile
    app = BvaeApp(hostile_root)
    async with app.run_test(size=SIZE) as pilot:
        await _runs_screen(app, pilot, 2)
        app.push_screen(CompareScreen([bad.path, good.path]))
        screen = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                                and len(app.screen.data) == 2 and app.screen, 10, "compare")
        await pilot.pause()
        assert "folder:/tmp/[/]imgs" in _screen_text(app)  # the legend's labels
        for view in ("2", "3", "4"):
            await pilot.press(view)
            await pilot.pause()
            _screen_text(app)
        table = screen.query_one("#cmp-scores", DataTable)
        assert "[/]" in [str(column.label) for column in table.columns.values()]
        assert any("folder:/tmp/[/]imgs" in cell for cell in _cells(table))


async def test_sweep_screen_shows_names_as_text(hostile_sweep, hostile_root, env_data):
    app = BvaeApp(hostile_root, env_data)
    async with app.run_test(size=SIZE) as pilot:
        await _runs_screen(app, pilot, 2)
        assert SHOWN in _screen_text(app)  # the sweep's line in the runs table
        app.open_sweep(hostile_sweep.path)
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.view,
                       10, "the sweep")
        await pilot.pause()
        text = _screen_text(app)
        assert f"Sweep {SHOWN}" in text and "on [/], 1 per device" in text


async def test_new_run_form_shows_device_names_as_text(hostile_root, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", lambda: fake_nvml(HOSTILE_GPU))
    app = BvaeApp(hostile_root, tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await _open_form(app, pilot)
        form = app.screen
        assert "GPU 0 [/]GPU" in _screen_text(app)
        # A pasted name: Textual's own Input shows what it holds, the command line under the
        # form shows it as text.
        form.query_one("#run-name", Input).value = HOSTILE
        await pilot.pause()
        command = str(form.query_one("#form-command").render())
        assert f"--name '{SHOWN}'" in command and "\x1b" not in command


async def test_notifications_are_plain_text(hostile_root):
    app = BvaeApp(hostile_root)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.screen.notify(f"cannot read {HOSTILE}", title="[/]", severity="error")
        toasts = await wait_for(pilot, lambda: list(app.screen.query(Toast)), 5,
                               "the notification")
        shown = str(toasts[0].render())
        assert f"cannot read {SHOWN}" in shown and shown.startswith("[/]")
        assert "\x1b" not in shown and "\x07" not in shown
