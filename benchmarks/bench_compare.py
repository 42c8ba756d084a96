"""Compare-screen benchmark (not a test): how long 50 runs of 3,000 metrics rows take to redraw.

    .venv/bin/python benchmarks/bench_compare.py [--runs 50] [--rows 3000] [--repeat 7] [--json]

Writes ``--runs`` run directories (five β values x seeds, 10 latents, ``--rows`` rows each) to a
temp dir, opens the TUI headless at 80x24 and 160x50 with every run marked on the compare screen,
then measures, as the median of ``--repeat`` rounds:

load     the watcher's first read of every run (parsing all rows), once.
live     one new row in one run: the watcher's poll (reads the new row) plus the redraw of the
         view in sight (curves: grouping, bands, the plots and legend rendered to text).
redraw   each view redrawn from the data in memory and rendered to text, grouped by β (five
         lines with bands) and with no grouping (fifty lines).

Target: a redraw under 200 ms. Rendering is forced by calling each widget's ``render()`` (what
the compositor does on its next frame), so the figures include drawing the braille plots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bvae_tui.engine.config import make_config  # noqa: E402
from bvae_tui.engine.runs.records import MetricsRow  # noqa: E402
from bvae_tui.engine.runs.store import create_run  # noqa: E402

Z = 10
BETAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def make_runs(root: Path, runs: int, rows: int) -> list[Path]:
    paths = []
    for k in range(runs):
        beta, seed = BETAS[k % len(BETAS)], k // len(BETAS) + 1
        cfg = make_config(None, dataset="dsprites-mini", beta=beta, seed=seed, z_dim=Z,
                          iterations=rows * 100, device="cpu")
        run = create_run(root, cfg, root, name=f"b{beta:g}-s{seed}")
        run.write_status(state="finished", iteration=rows * 100, total=rows * 100)
        with open(run.metrics_path, "w") as fh:
            for i in range(1, rows + 1):
                kl = (30 / beta) * (1 - math.exp(-i / 300)) + 0.1 * seed
                fh.write(MetricsRow(
                    iter=i * 100, time=1.7e9 + i, elapsed=i / 10.0,
                    loss=2000 * math.exp(-i / 500) + 40 + beta, recon=2000 * math.exp(-i / 500)
                    + 30, kl=kl, kl_per_latent=[kl / (j + 1) for j in range(Z)],
                    mu_mean=[0.0] * Z, var_mean=[1.0] * Z, c=None, img_per_s=1800.0).to_line())
        paths.append(run.path)
    return paths


def _render_view(screen, view: str) -> None:
    """Render the view's widgets to text, as the compositor's next frame would."""
    from bvae_tui.tui.widgets.compare_view import LatentGrid, Legend
    from bvae_tui.tui.widgets.curve_plot import CurvePlot

    if view == "curves":
        for widget in [*screen.query(CurvePlot), *screen.query(Legend)]:
            if widget.display:
                widget.render()
    elif view == "latents":
        screen.query_one(LatentGrid).render()


def _timed(fn, repeat: int) -> dict[str, float]:
    """Median wall time and median CPU time of this thread (on a loaded machine the wall time
    includes waiting for a core; the CPU time is what the redraw itself costs)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


async def measure(paths: list[Path], size: tuple[int, int], repeat: int) -> dict:
    from bvae_tui.engine.analysis.compare_runs import RunsFollower
    from bvae_tui.engine.runs.store import Run
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.compare import VIEWS, CompareScreen

    app = BvaeApp(paths[0].parent)
    out: dict = {"size": f"{size[0]}x{size[1]}"}
    async with app.run_test(size=size) as pilot:
        screen = CompareScreen(paths)
        await app.push_screen(screen)
        await pilot.pause()
        screen.workers.cancel_group(screen, "compare-watch")  # the benchmark drives the reads
        follower = RunsFollower([Run(p) for p in paths])
        t0, c0 = time.perf_counter(), time.thread_time()
        data = follower.poll()
        out["load_s"] = {"wall": time.perf_counter() - t0, "cpu": time.thread_time() - c0}
        screen.set_data(data)
        await pilot.pause()

        def live() -> None:
            with open(paths[0] / "metrics.jsonl", "a") as fh:
                fh.write(MetricsRow(iter=10**9 + int(time.time() * 1e6), loss=50.0, recon=40.0,
                                    kl=10.0, kl_per_latent=[1.0] * Z).to_line())
            fresh = follower.poll()
            screen.set_data(fresh)  # redraws the view in sight (curves)
            _render_view(screen, "curves")

        out["live_s"] = _timed(live, repeat)
        data = follower.poll() or screen.data
        for by_name, by in (("by_beta", ("beta",)), ("per_run", ())):
            screen.by = by
            screen.set_data(data)
            await pilot.pause()
            for view in VIEWS:
                screen.action_view(view)
                await pilot.pause()

                def redraw(view: str = view) -> None:
                    getattr(screen, f"_draw_{view}")()
                    _render_view(screen, view)

                out[f"{by_name}_{view}_s"] = _timed(redraw, repeat)
        screen.action_view("curves")
        await pilot.pause()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    load_before = os.getloadavg()[0]
    try:
        paths = make_runs(tmp, args.runs, args.rows)
        results = [asyncio.run(measure(paths, size, args.repeat))
                   for size in ((80, 24), (160, 50))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record = {"runs": args.runs, "rows": args.rows, "repeat": args.repeat, "results": results,
              "cpus": os.cpu_count(), "load_average": [load_before, os.getloadavg()[0]]}
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"{args.runs} runs x {args.rows} rows, median of {args.repeat} (target: redraw "
          f"< 200 ms)")
    def ms(t: dict[str, float]) -> str:
        return f"{t['wall'] * 1000:.0f} ({t['cpu'] * 1000:.0f} CPU)"

    print("times in ms: wall (CPU time of the UI thread)")
    for r in results:
        print(f"\n{r['size']}: first read of every row {ms(r['load_s'])} (once); "
              f"a new row in one run, read and redrawn: {ms(r['live_s'])}")
        groups = min(args.runs, len(BETAS))
        for by_name, label in (("by_beta", f"grouped by β ({groups} lines + bands)"),
                               ("per_run", f"no grouping ({args.runs} lines)")):
            views = "  ".join(f"{v} {ms(r[f'{by_name}_{v}_s'])}"
                              for v in ("curves", "latents", "scores", "traversals"))
            print(f"  redraw, {label}: {views}")
    print(f"\n(machine: {os.cpu_count()} cores, load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
