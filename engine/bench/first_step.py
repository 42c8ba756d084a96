"""End to end: seconds from launching a training process to its first optimiser step, and the
peak resident memory of that process, for `bvae train` and for the textbook script.

Runs in the parent of `bvae bench`; torch-free (each measured process imports its own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bvae_tui.engine.bench.children import child_env, wait_rusage
from bvae_tui.engine.runs.store import list_runs

# The textbook script prints this and the wall-clock time right after its first step.
FIRST_STEP_MARK = "BVAE_BENCH_FIRST_STEP"


def bvae_command() -> list[str]:
    script = Path(sys.executable).with_name("bvae")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bvae_tui.cli.main"]


def _failure(err: bytes | str, code: int) -> str:
    text = err.decode(errors="replace") if isinstance(err, bytes) else err
    return text.strip().splitlines()[-1] if text.strip() else f"exit code {code}"


def first_step_fast(device: str, dataset: str, data_dir: str | None,
                    iterations: int) -> tuple[float, int, str]:
    """Launch the real ``bvae train`` (foreground); seconds to its first metrics row, peak RSS,
    and the precision ``--amp auto`` chose (config.json's ``precision``)."""
    with tempfile.TemporaryDirectory(prefix="bvae-bench-") as tmp:
        runs = Path(tmp) / "runs"
        cmd = [*bvae_command(), "train", "--dataset", dataset, "--device", device,
               "--iterations", str(iterations), "--log-every", "1", "--preview-every", "0",
               "--checkpoint-every", str(max(iterations, 1)), "--checkpoint-minutes", "0",
               "--name", "bench", "--runs-dir", str(runs)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        env = {k: v for k, v in os.environ.items() if k != "BVAE_RUNS_DIR"}
        launched = time.time()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        code, rss = wait_rusage(proc, timeout=600)
        err = proc.stderr.read() if proc.stderr else b""
        if proc.stderr:
            proc.stderr.close()
        trained = list_runs(runs)
        rows = trained[0].metrics() if trained else []
        first = rows[0].time if rows else None
        precision = trained[0].record().precision if trained else None
        used = (precision or {}).get("used", "off")
        if code != 0 or first is None:
            raise RuntimeError(f"'bvae train' failed in the benchmark: {_failure(err, code)}")
        return first - launched, rss, used


def first_step_baseline(device: str, dataset: str, data_dir: str | None, iterations: int,
                        images: int | None) -> tuple[float, int]:
    """The textbook script (bvae_tui.engine.bench.textbook); seconds, peak RSS."""
    cmd = [sys.executable, "-m", "bvae_tui.engine.bench.textbook", "--device", device,
           "--dataset", dataset, "--iterations", str(iterations)]
    if images:
        cmd += ["--images", str(images)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    launched = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(fast=False))
    code, rss = wait_rusage(proc, timeout=900)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else b""
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    marks = [ln.split()[1] for ln in out.splitlines() if ln.startswith(FIRST_STEP_MARK)]
    if code != 0 or not marks:
        raise RuntimeError(f"the textbook baseline failed: {_failure(err, code)}")
    return float(marks[0]) - launched, rss
