"""Regenerate the TUI screenshots of the README and the docs (docs/img/*.svg).

It trains real tiny runs first, so every picture shows what the app draws for real data:
a 2x2 sweep (beta 1 and 4, seeds 1 and 2) for the runs table, the sweep screen and compare,
and one longer run with probes for the monitor, the scores screen and the explorer. Each run
is scored with `bvae eval --fast`. Runs already finished in the work folder are reused, so a
second call only redraws.

    .venv/bin/python benchmarks/tui_screenshots.py [--work /tmp/bvae-screens] [--out docs/img]

Textual's own `App.save_screenshot()` writes each screen as SVG from a Pilot session, at the
size given by --size (100x32 by default, the size the issue was tried at).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The console script beside this interpreter (`python -m bvae_tui.cli.main` would register the
# commands on another copy of the module).
BVAE = [str(Path(sys.executable).with_name("bvae"))]
SWEEP = "shots"
MONITOR_RUN = "probed-b4"
# Short enough for a loaded 2-core machine (minutes), long enough for curves and a traversal.
SWEEP_ITERATIONS = 400
MONITOR_ITERATIONS = 300


def bvae(*args: str, work: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run one `bvae` command on the work folder's runs and data dirs (options after the
    arguments: click takes them there)."""
    dirs = ["--runs-dir", str(work / "runs")] if args[0] != "data" else []
    if args[0] in ("train", "sweep", "eval", "data"):
        dirs += ["--data-dir", str(work / "data")]
    cmd = [*BVAE, *args, *dirs]
    print("+ bvae", " ".join(cmd[len(BVAE):]), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode:
        raise SystemExit(f"bvae {args[0]} failed:\n{done.stderr}")
    return done


def runs(work: Path) -> list[dict]:
    out = bvae("runs", "--json", work=work).stdout
    return json.loads(out) if out.strip() else []


def train(work: Path) -> None:
    """Train (or finish) the sweep and the monitor's run, then score each once."""
    bvae("data", "prepare", "dsprites-mini", work=work)
    have = {r["name"]: r for r in runs(work)}
    common = ["--preset", "dsprites-H", "--dataset", "dsprites-mini", "--device", "cpu",
              "--log-every", "10", "--preview-every", "100"]
    if not any(r.get("sweep") for r in have.values()):
        bvae("sweep", *common, "--beta", "1,4", "--seed", "1,2", "--iterations",
             str(SWEEP_ITERATIONS), "--slots", "2", "--name", SWEEP, work=work)
    if MONITOR_RUN not in have:
        bvae("train", *common, "--beta", "4", "--iterations", str(MONITOR_ITERATIONS),
             "--probe-every", "100", "--name", MONITOR_RUN, "--detach", work=work)
    while True:  # the sweep's scheduler and the detached worker train in the background
        states = {r["name"]: r["state"] for r in runs(work)}
        busy = [n for n, s in states.items() if s in ("queued", "running", "starting")]
        if len(states) >= 5 and not busy:
            break
        print(f"  waiting for {len(busy)} runs: {', '.join(sorted(busy))}", flush=True)
        time.sleep(20)
    for run in runs(work):
        if run["state"] != "finished":
            raise SystemExit(f"run {run['name']} ended {run['state']}: see its worker.log")
        if not (Path(run["path"]) / "eval.json").exists():
            bvae("eval", run["id"], "--fast", work=work)


async def capture(work: Path, out: Path, size: tuple[int, int]) -> None:
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.compare import CompareScreen
    from bvae_tui.tui.screens.explore import ExploreScreen
    from bvae_tui.tui.screens.monitor import MonitorScreen
    from bvae_tui.tui.screens.runs import RunsScreen
    from bvae_tui.tui.screens.sweep import SweepScreen

    rows = runs(work)
    probed = next(Path(r["path"]) for r in rows if r["name"] == MONITOR_RUN)
    members = sorted(Path(r["path"]) for r in rows if r.get("sweep"))
    sweeps_dir = work / "runs" / "sweeps"
    sweep_dir = next(p for p in sweeps_dir.iterdir() if (p / "sweep.json").exists())
    out.mkdir(parents=True, exist_ok=True)
    app = BvaeApp(str(work / "runs"), str(work / "data"))

    async def settle(pilot, ready, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {app.screen.__class__.__name__}")
            await pilot.pause(0.2)
        await pilot.pause(1.5)  # let workers finish drawing plots and previews

    def shot(name: str) -> None:
        path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
        print(f"  wrote {Path(path).relative_to(ROOT) if ROOT in Path(path).parents else path}")

    async with app.run_test(size=size) as pilot:
        runs_screen = app.screen
        await settle(pilot, lambda: isinstance(runs_screen, RunsScreen) and runs_screen.loaded
                     and len(runs_screen.rows) >= 5)
        await pilot.press("home", "down")  # the sweep's line, under the newest run
        await pilot.press("space")  # unfolds it
        await pilot.pause(0.5)
        shot("runs")

        app.open_monitor(probed)
        await settle(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.pause(3)
        shot("monitor")
        app.pop_screen()

        app.open_sweep(sweep_dir)
        await settle(pilot, lambda: isinstance(app.screen, SweepScreen))
        shot("sweep")
        app.pop_screen()

        app.push_screen(CompareScreen(members))
        await settle(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.data)
        shot("compare")
        await pilot.press("3")
        await pilot.pause(1)
        shot("compare-scores")
        app.pop_screen()

        await pilot.press("p")
        await pilot.pause(3)
        shot("scores")
        app.pop_screen()

        app.action_new_run()
        await pilot.pause(3)
        shot("new-run")
        app.pop_screen()

        app.open_explore(probed)
        await settle(pilot, lambda: isinstance(app.screen, ExploreScreen))
        await pilot.pause(4)
        await pilot.press("right", "right", "right")
        await pilot.pause(2)
        shot("explore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bvae-screens"),
                        help="where the runs and data are kept between calls")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--size", default="100x32", help="terminal size, COLUMNSxROWS")
    parser.add_argument("--skip-training", action="store_true",
                        help="only redraw from the runs already in --work")
    args = parser.parse_args()
    columns, lines = (int(n) for n in args.size.lower().split("x"))
    if not args.skip_training:
        train(args.work)
    asyncio.run(capture(args.work, args.out, (columns, lines)))


if __name__ == "__main__":
    main()
