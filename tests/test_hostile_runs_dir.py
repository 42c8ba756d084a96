"""The hostile-runs-dir check: one runs dir holding every case of the hardening issue at once.

Links out of the root, ``..`` and absolute member ids, a foreign run listed as a member, FIFOs
and nested JSON in place of run files, markup and escape sequences in names and values, a huge
metrics line, links where the tool writes. Every command and the TUI's runs table, monitor,
scores, sweep and compare screens must stay responsive, refuse in one line, never let an escape
sequence through, and change nothing outside the runs root: the files around it are hashed
before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from bvae_tui.engine.config import make_config
from bvae_tui.engine.runs.store import Run, create_run
from tests.conftest import bvae_command
from tests.tui_helpers import make_run, metrics_row, wait_for

MARKUP = "[/]x[bold]\x1b[31mred\x1b]0;title\x07[link=file:///etc]y"
COMMAND_TIMEOUT_S = 120  # a hang is a failure, however slow the machine


def snapshot(top: Path, *skip: Path) -> dict[str, tuple]:
    """Every entry below ``top`` except those under ``skip``: its kind, mode, size and content
    hash (links by their target, FIFOs by their mode: nothing is opened that could block)."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(top, followlinks=False):
        here = Path(folder)
        if here in skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = here / name
            if path in skip:
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[str(path)] = ("file", st.st_mode, st.st_size,
                                  hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                out[str(path)] = ("other", st.st_mode)
    return out


def _victim(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": {"dataset": "dsprites-mini"}}))
    (folder / "status.json").write_text(json.dumps({"state": "stopped"}))
    (folder / "precious.txt").write_text("keep me\n")
    return folder


def _replace_with_fifo(path: Path) -> None:
    if path.exists():
        path.unlink()
    os.mkfifo(path)


def build(tmp: Path) -> dict:
    """The hostile runs dir under ``tmp / 'runs'``, with victims around it."""
    from bvae_tui.engine.runs.sweeps.records import SchedulerStatus, SweepRecord
    from bvae_tui.engine.runs.sweeps.store import create_sweep

    root = tmp / "runs"
    around = tmp / "around"
    outside = _victim(around / "outside-run")
    absolute = _victim(around / "absolute-run")
    precious = around / "precious.txt"
    precious.write_text("keep me too\n")
    cases: dict = {"root": root, "around": around}

    plain = make_run(root, tmp, "plain", "stopped")
    markup = make_run(root, tmp, MARKUP, "stopped", device="cpu")
    markup.write_status(device="[/]", error=MARKUP)
    cfg = json.loads(markup.config_path.read_text())
    cfg["data_dir"] = "/tmp/[/]\x1b[2J"
    markup.config_path.write_text(json.dumps(cfg))
    markup.eval_path.write_text(json.dumps({"scores": {"[/]": 0.5, "mig\x1b[31m": 0.2},
                                            "details": {}}))
    nested = make_run(root, tmp, "nested", "stopped")
    nested.config_path.write_text('{"config":' * 50_000 + "{}" + "}" * 50_000)
    nested.eval_path.write_text("[" * 100_000 + "]" * 100_000)
    fifo = make_run(root, tmp, "fifo", "stopped")
    for name in ("status.json", "config.json", "metrics.jsonl", "eval.json", "worker.log"):
        _replace_with_fifo(fifo.path / name)
    fifo.previews_dir.mkdir()
    _replace_with_fifo(fifo.preview_path("traversal"))
    # A decompression bomb as a preview: a few kilobytes of PNG, 25 million pixels.
    from PIL import Image

    markup.previews_dir.mkdir()
    Image.new("L", (5000, 5000)).save(markup.preview_path("traversal"))
    huge = make_run(root, tmp, "huge", "stopped")
    with open(huge.metrics_path, "a") as fh:
        fh.write('{"iter": 40, "pad": "' + "x" * (3 * 2**20) + '"}\n')
        fh.write(metrics_row(50).to_line())
    links = make_run(root, tmp, "links", "stopped")
    os.symlink(precious, links.path / ".lock")
    os.symlink(around, links.checkpoint_dir)
    os.unlink(links.metrics_path)
    os.symlink(precious, links.metrics_path)
    os.symlink(outside, root / "20260101-000000-linked-run")
    cases.update(plain=plain, markup=markup, nested=nested, fifo=fifo, huge=huge, links=links)

    members = [({"seed": s}, make_config(None, dataset="dsprites-mini", iterations=10,
                                         z_dim=4, seed=s)) for s in (1, 2)]
    record = SweepRecord(name=MARKUP, axes=["seed"], values={"seed": [1, 2]})
    sweep = create_sweep(root, record, members, tmp, SchedulerStatus(state="stopped"))
    for run in sweep.members():
        run.write_status(state="stopped")
    foreign = create_run(root, members[0][1], tmp, name="foreign")
    foreign.write_status(state="stopped")
    data = json.loads(sweep.record_path.read_text())
    data["members"] += ["../around/outside-run", "../../around/outside-run", str(absolute),
                        foreign.id]
    sweep.record_path.write_text(json.dumps(data))
    cases.update(sweep=sweep, foreign=foreign)

    # A zip bomb where CelebA is expected: two entries of 200 MiB of zeros, a few hundred KB.
    data = tmp / "data"
    data.mkdir()
    zeros = bytes(2**20)
    with zipfile.ZipFile(data / "celeba.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in (1, 2):
            with zf.open(f"img_align_celeba/{i:06d}.jpg", "w", force_zip64=True) as fh:
                for _ in range(200):
                    fh.write(zeros)
    cases["data"] = data
    return cases


@pytest.fixture
def hostile(runs_dir, tmp_path) -> dict:
    """The cases, in ``runs_dir`` (``tmp_path / 'runs'``, exported as BVAE_RUNS_DIR)."""
    cases = build(tmp_path)
    assert cases["root"] == runs_dir
    cases["before"] = snapshot(tmp_path, cases["root"], cases["data"])
    return cases


def run_bvae(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*bvae_command(), *args], env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)


def check_output(proc: subprocess.CompletedProcess, args: tuple[str, ...]) -> None:
    said = proc.stdout + proc.stderr
    assert "Traceback" not in said, (args, said)
    assert "\x1b" not in said and "\x07" not in said, (args, said[:500])
    if proc.returncode != 0:
        assert proc.returncode == 1, (args, proc.returncode, said)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, proc.stderr)


def test_every_command_on_a_hostile_runs_dir(hostile, env, tmp_path):
    env = {**env, "BVAE_RUNS_DIR": str(hostile["root"]), "COLUMNS": "200"}
    runs = [hostile[k] for k in ("plain", "markup", "nested", "fifo", "huge", "links")]
    sweep = hostile["sweep"]
    listing = run_bvae(env, "runs", "--json")
    check_output(listing, ("runs", "--json"))
    listed = {row["id"] for row in json.loads(listing.stdout)}
    assert {r.id for r in runs} <= listed  # damaged runs are shown as such, none hidden
    assert "20260101-000000-linked-run" not in listed

    commands: list[tuple[str, ...]] = [("runs",), ("sweeps",), ("sweeps", "--json"),
                                       ("sweep", "show", sweep.id), ("compare",),
                                       ("compare", "--json"), ("runs", "show", "linked-run"),
                                       ("runs", "show", "20260101-000000-linked-run"),
                                       ("runs", "rm", "--yes", "20260101-000000-linked-run"),
                                       ("runs", "rm", "--yes", str(hostile["around"])),
                                       ("runs", "rm", "--yes", ""),
                                       ("resume", hostile["links"].id),
                                       ("export", "png", hostile["links"].id),
                                       ("data", "prepare", "celeba", "--data-dir",
                                        str(hostile["data"]))]
    commands += [("runs", "show", r.id) for r in runs]
    for args in commands:
        check_output(run_bvae(env, *args), args)
    # Deleting: each run that can be deleted goes, the links run is refused (its lock is a
    # link), and the sweep takes only its two real members with it.
    for run in runs:
        proc = run_bvae(env, "runs", "rm", "--yes", run.id)
        check_output(proc, ("runs", "rm", run.id))
    assert hostile["links"].path.is_dir()
    genuine = [m.id for m in sweep.deletable_members()]
    assert len(genuine) == 2
    proc = run_bvae(env, "sweep", "rm", "--yes", sweep.id)
    check_output(proc, ("sweep", "rm", sweep.id))
    assert proc.returncode == 0, proc.stderr
    assert not any((hostile["root"] / m).exists() for m in genuine)
    assert hostile["foreign"].path.is_dir()

    assert snapshot(tmp_path, hostile["root"], hostile["data"]) == hostile["before"]


async def test_tui_screens_on_a_hostile_runs_dir(hostile, tmp_path):
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.compare import CompareScreen
    from bvae_tui.tui.screens.monitor import MonitorScreen
    from bvae_tui.tui.screens.runs import RunsScreen
    from bvae_tui.tui.screens.scores import ScoresScreen
    from bvae_tui.tui.screens.sweep import SweepScreen
    from tests.tui_helpers import screen_lines

    app = BvaeApp(hostile["root"])
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: any(r.id == hostile["plain"].id for r in screen.rows),
                       30, "the runs table")
        text = "\n".join(screen_lines(app))
        assert "\x1b" not in text and "\x07" not in text
        for key in ("plain", "markup", "nested", "fifo", "huge"):
            app.open_monitor(hostile[key].path)
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "monitor")
            monitor = app.screen
            await wait_for(pilot, lambda m=monitor: m.status.state, 10, "a status")
            await pilot.pause(0.3)
            assert "\x1b" not in "\n".join(screen_lines(app))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), 10, "scores")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
        await pilot.press("m", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                       and app.screen.data, 30, "compare")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
        app.open_sweep(hostile["sweep"].path)
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), 10, "sweep")
        await pilot.pause(0.5)
        assert "\x1b" not in "\n".join(screen_lines(app))
    assert snapshot(tmp_path, hostile["root"], hostile["data"]) == hostile["before"]
    assert Run(hostile["plain"].path).status().state == "stopped"
