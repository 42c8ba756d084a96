"""TUI benchmark (not a test): row-to-screen latency and the CPU an idle TUI uses.

    .venv/bin/python benchmarks/bench_tui.py [--rows 30] [--idle-seconds 30] [--json]

latency  A run directory whose 'worker' is a stand-in live process; the app runs headless
         (100x40) with the run's monitor open. Rows are appended to metrics.jsonl at random
         moments, as the worker does (one JSON line, flushed); measured: time from the write to
         the monitor's header holding that row's loss (i.e. the watcher thread read it, posted a
         message, and the screen updated its widgets; the compositor paints on its next frame).
         Target < 1 s.
idle     A real `bvae-tui` process in a real terminal (tmux, 80x24) watches a run while a writer
         appends a row every second and refreshes status.json (what a worker with log_every 100
         does at ~100 it/s); measured: the TUI process's CPU seconds / wall seconds, on the runs
         screen and on the monitor. Without tmux the app runs headless in a subprocess instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bvae_tui.engine.config import make_config  # noqa: E402
from bvae_tui.engine.runs.process import process_start_time  # noqa: E402
from bvae_tui.engine.runs.records import MetricsRow  # noqa: E402
from bvae_tui.engine.runs.store import Run, create_run  # noqa: E402

Z = 10


def _row(iteration: int, loss: float) -> MetricsRow:
    return MetricsRow(iter=iteration, time=time.time(), elapsed=iteration / 100.0, loss=loss,
                      recon=loss * 0.9, kl=12.0, kl_per_latent=[3, 2, 1.5, 1, 0.5] + [0.01] * 5,
                      mu_mean=[0.0] * Z, var_mean=[0.5] * Z, c=None, img_per_s=6400.0)


def _append(run: Run, row: MetricsRow) -> None:
    with open(run.metrics_path, "a") as fh:
        fh.write(row.to_line())
        fh.flush()


def make_running_run(root: Path, pid: int) -> Run:
    cfg = make_config(None, dataset="dsprites-mini", iterations=300_000, z_dim=Z)
    run = create_run(root, cfg, root / "data", name="bench")
    run.write_status(state="running", pid=pid, pid_start=process_start_time(pid), iteration=0,
                     total=300_000, started=time.time(), heartbeat=time.time(), device="cpu")
    return run


# --------------------------------------------------------------------------------------------
async def _latency(root: Path, rows: int) -> list[float]:
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.monitor import MonitorScreen

    live = subprocess.Popen(["sleep", "600"])
    try:
        run = make_running_run(root, live.pid)
        for i in range(1, 11):
            _append(run, _row(i * 100, 900.0 - i))
        app = BvaeApp(root)
        out: list[float] = []
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.5)
            app.open_monitor(run.path)
            while not isinstance(app.screen, MonitorScreen) or app.screen.history.rows_seen < 10:
                await asyncio.sleep(0.01)
            monitor = app.screen
            header = monitor.query_one("#mon-header")
            for k in range(rows):
                await asyncio.sleep(random.uniform(0.05, 0.5))  # a random phase of the polls
                loss = 500.0 + k
                t0 = time.perf_counter()
                _append(run, _row(2000 + k * 100, loss))
                want = f"loss {loss:.0f}"
                while want not in str(header.render()):
                    if time.perf_counter() - t0 > 10:
                        raise RuntimeError("row never showed up")
                    await asyncio.sleep(0.002)
                out.append(time.perf_counter() - t0)
        return out
    finally:
        live.kill()
        live.wait()


# --------------------------------------------------------------------------------------------
class Writer(threading.Thread):
    """Appends a row a second and refreshes status.json, as a training worker would."""

    def __init__(self, run: Run):
        super().__init__(daemon=True)
        self.target, self.done = run, threading.Event()
        self.rows = 0

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.rows += 1
            _append(self.target, _row(self.rows * 100, 1000.0 / (1 + self.rows)))
            self.target.write_status(iteration=self.rows * 100, heartbeat=time.time())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tui_pid(pane_pid: int) -> int:
    """The bvae-tui process: the pane's process or one of its children."""
    todo = [pane_pid]
    while todo:
        pid = todo.pop()
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"bvae-tui" in cmd or b"bvae_tui" in cmd:
            return pid
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        todo += [int(k) for k in kids.split()]
    raise RuntimeError("bvae-tui process not found in the tmux pane")


def _measure(pid: int, seconds: float) -> float:
    c0, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def _idle(root: Path, seconds: float) -> dict:
    live = subprocess.Popen(["sleep", "600"])
    run = make_running_run(root, live.pid)
    writer = Writer(run)
    writer.start()
    tui = str(Path(sys.executable).with_name("bvae-tui"))
    session = f"bench-tui-{os.getpid()}"
    result: dict = {}
    try:
        if shutil.which("tmux"):
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                            f"{tui} --runs-dir {root}"], check=True)
            pane = int(subprocess.run(["tmux", "list-panes", "-t", session, "-F",
                                       "#{pane_pid}"], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
            time.sleep(5)  # start-up
            pid = _tui_pid(pane)
            result["terminal"] = "tmux 80x24"
            result["runs_screen"] = _measure(pid, seconds / 2)
            subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
            time.sleep(3)
            screen = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"],
                                    capture_output=True, text=True).stdout
            if "running bench" not in screen:
                raise RuntimeError("monitor did not open:\n" + screen)
            result["monitor"] = _measure(pid, seconds)
        else:
            code = ("import sys; from bvae_tui.tui.app import BvaeApp\n"
                    "app = BvaeApp(sys.argv[1])\n"
                    "app.call_later(lambda: app.set_timer(2, lambda: app.open_monitor("
                    "__import__('pathlib').Path(sys.argv[2]))))\n"
                    "app.run(headless=True, size=(80, 24))\n")
            proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(run.path)],
                                    cwd=ROOT)
            time.sleep(8)
            result["terminal"] = "headless"
            result["monitor"] = _measure(proc.pid, seconds)
            proc.kill()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        writer.done.set()
        result["rows_written"] = writer.rows
        live.kill()
        live.wait()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30, help="latency samples")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    try:
        lat = asyncio.run(_latency(tmp / "latency", args.rows))
        idle = _idle(tmp / "idle", args.idle_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lat_sorted = sorted(lat)
    result = {
        "latency_s": {"median": statistics.median(lat), "p95": lat_sorted[int(0.95 * len(lat))
                                                                           - 1],
                      "max": max(lat), "samples": len(lat)},
        "idle_cpu_fraction": idle,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lt = result["latency_s"]
        print(f"metrics row -> monitor: median {lt['median'] * 1000:.0f} ms, p95 "
              f"{lt['p95'] * 1000:.0f} ms, max {lt['max'] * 1000:.0f} ms over {lt['samples']} "
              f"rows (target < 1000 ms)")
        for key in ("runs_screen", "monitor"):
            if key in idle:
                print(f"idle TUI CPU ({idle['terminal']}, {key.replace('_', ' ')} watching a "
                      f"running run): {100 * idle[key]:.1f}% of one core")
        print(f"(machine: {os.cpu_count()} cores, load average {result['load_average']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
