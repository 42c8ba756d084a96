"""Explore benchmark (not a test): keypress-to-frame latency of the Explore screen, and what one
decode costs, on the CPU, for both architectures.

    .venv/bin/python benchmarks/bench_explore.py [--presses 60] [--threads N] [--json]

decode   Explorer.view (one batch: the source's code, the edited code and the 10-value row),
         and a single 64x64 decode, timed over many calls after a warm-up.
latency  The app runs headless at 80x24 (half blocks, what SSH gets) with the Explore screen
         open on a z_dim-10 model; measured: from the screen handling → (its action) to the
         frame with the new decode painted (a call_after_refresh once the images are set). One
         press at a time: the latency of a single key (held keys coalesce).

The weights are seeded, untrained: the cost of a forward pass does not depend on their values.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Z = 10
THREADS: int | None = 1  # the explorer's default; --threads 2 measures two


def make_run(root: Path, arch: str):
    import torch

    from bvae_tui.datasets.prepare import prepare
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    data = root / "data"
    prepare("dsprites-mini", data)
    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10, device="cpu",
                      arch=arch)
    run = create_run(root / "runs", cfg, data, name=f"bench-{arch}")
    torch.manual_seed(0)
    model = build_model(arch, 1, Z)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": model.state_dict(),
                                          "iteration": 1, "arch": arch, "channels": 1,
                                          "z_dim": Z, "config": cfg.to_dict()})
    return run, data


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(p95, 2),
            "n": len(ms)}


def bench_decode(run, data: Path, calls: int = 100) -> dict[str, dict[str, float]]:
    from bvae_tui.engine.analysis.explore import open_explorer

    ex = open_explorer(run, data_dir=data, cpu_threads=THREADS)
    base, source = ex.base(1060)
    code = base.copy()
    out = {}
    for name, fn in (("view (12 codes)", lambda: ex.view(1060, base, code, 0, source)),
                     ("one decode", lambda: ex.decode(code[None]))):
        for _ in range(10):
            fn()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = _stats(times)
    return out


async def bench_keys(run, data: Path, presses: int) -> dict[str, float]:
    """From the screen handling the key (its action) to the frame holding the new decode being
    painted (call_after_refresh after the images were set). Pilot's own key delivery is left
    out: it waits for the app to go idle, which is the harness, not the screen."""
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.explore import ExploreScreen

    app = BvaeApp(run.path.parent, data)
    times: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ExploreScreen(run.path, data))
        while not (isinstance(app.screen, ExploreScreen) and app.screen.view is not None):
            await pilot.pause(0.05)
        screen = app.screen
        stamps: dict[str, float] = {}
        move, draw = screen.action_move, screen._draw

        def timed_move(amount: float) -> None:
            stamps["key"] = time.perf_counter()
            move(amount)

        def timed_draw() -> None:
            draw()
            screen.call_after_refresh(lambda: stamps.__setitem__("frame", time.perf_counter()))

        screen.action_move, screen._draw = timed_move, timed_draw
        for i in range(presses + 5):
            stamps.clear()
            await pilot.press("right" if (i // 12) % 2 == 0 else "left")  # stay on the bar
            while "frame" not in stamps or screen.busy:
                await asyncio.sleep(0.0005)
            if i >= 5:  # warm-up
                times.append((stamps["frame"] - stamps["key"]) * 1000)
    return _stats(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    global THREADS
    if args.threads:
        THREADS = args.threads
        torch.set_num_threads(args.threads)
        import bvae_tui.engine.analysis.explore as ex

        ex.CPU_THREADS = args.threads  # the screen's open_explorer reads the default
    results: dict = {"torch_threads": THREADS}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("H", "B"):
            run, data = make_run(Path(tmp) / arch, arch)
            results[arch] = {"decode": bench_decode(run, data),
                             "keypress_to_frame": asyncio.run(bench_keys(run, data,
                                                                         args.presses))}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"torch threads: {results['torch_threads']}")
        for arch in ("H", "B"):
            r = results[arch]
            for name, s in {**r["decode"], "keypress to frame (80x24)":
                            r["keypress_to_frame"]}.items():
                print(f"{arch}  {name:<28} median {s['median_ms']:7.2f} ms   "
                      f"p95 {s['p95_ms']:7.2f} ms   (n={s['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
