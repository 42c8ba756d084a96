"""Kill -9 trial: does a run survive SIGKILL at any moment, and resume to the same result?

    .venv/bin/python benchmarks/kill_trial.py [--trials 50] [--iterations 300] [--batch-size 32]
                                              [--seed 0] [--json] [--keep DIR]

Each trial starts a short detached run (`bvae train --detach`, dsprites-mini, one thread) and
kills its worker with SIGKILL at a random moment, by turns: in its first second (still
importing torch), in the middle of a checkpoint write (a checkpoint's temp file is on disk), or
at a random training iteration. Then it checks that every file of the run still parses (status,
config, every complete metrics line) and every checkpoint loads, resumes the run with
`bvae resume` to the end, and checks that the metrics rows are strictly increasing, complete (a
row at every ``log_every``) and equal to those of one uninterrupted run of the same config, and
that no temp file of an interrupted write is left. It prints a summary line per trial and a
total (``trials, corrupt files, failed resumes, duplicated rows, ...``); the exit status is 1 if
any count that must be 0 is not.

The CPU time is mostly training: a trial is two worker starts (imports) and one run's worth of
steps. Results: benchmarks/RESULTS.md, "Kill -9 trial".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("first second", "checkpoint write", "training")
LOG_EVERY = 10
MUST_BE_ZERO = ("corrupt_files", "failed_resumes", "duplicated_rows", "missing_rows",
                "mismatched_rows", "debris_left")


@dataclass
class Trial:
    mode: str
    killed_at: int | None = None  # iteration in status.json at the kill (None: not started)
    in_checkpoint_write: bool = False  # a checkpoint temp file existed at the kill
    torn_lines: int = 0  # a metrics line cut mid-write (readers skip it; by design)
    corrupt_files: list[str] = field(default_factory=list)
    failed_resumes: int = 0
    duplicated_rows: int = 0
    missing_rows: int = 0
    mismatched_rows: int = 0
    debris_left: list[str] = field(default_factory=list)
    resumed_from: str = ""  # "checkpoint", or "0" when none was written before the kill
    note: str = ""


def bvae(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("bvae")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bvae_tui.cli.main"]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def strict_load(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard constant {name}")

    return json.loads(text, parse_constant=refuse)


def wait_gone(pid: int, timeout: float = 30) -> None:
    """Until ``pid`` has exited (reaped, or a zombie of a parent that is not us)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.005)
    raise RuntimeError(f"pid {pid} did not exit after SIGKILL")


def temp_files(run) -> list[str]:
    from bvae_tui.engine.runs.recovery import TRAINER_FILES

    found = []
    for folder in TRAINER_FILES:
        try:
            names = os.listdir(run.path / folder)
        except OSError:
            continue
        found += [f"{folder}/{n}".lstrip("/") for n in names
                  if n.startswith(".") and n != ".lock"]
    return found


def checkpoint_temp_files(run) -> list[str]:
    try:
        return [n for n in os.listdir(run.checkpoint_dir) if n.startswith(".")]
    except OSError:
        return []


def kill_worker(run, mode: str, rng: random.Random, train_s: float, trial: Trial) -> bool:
    """Wait for the moment ``mode`` asks for, then SIGKILL the run's worker; False when the
    run ended first (nothing killed)."""
    from bvae_tui.engine.runs.lock import lock_holder

    started = time.monotonic()
    pid = None
    while pid is None and time.monotonic() - started < 60:
        pid = run.raw_status().pid or lock_holder(run) or None
        time.sleep(0.002)
    if pid is None:
        raise RuntimeError(f"{run.id}: no worker pid after 60 s")
    if mode == "first second":
        time.sleep(max(0.0, rng.uniform(0, 1.0) - (time.monotonic() - started)))
    elif mode == "checkpoint write":  # during the n-th write (later ones replace a last.pt)
        target, seen, polls = rng.randint(1, 6), set(), 0
        while True:
            # (each write has its own temp name; one of this model takes milliseconds)
            seen |= {n for n in checkpoint_temp_files(run) if n.startswith(".last.")}
            if len(seen) >= target and checkpoint_temp_files(run):
                break
            polls += 1
            if polls % 200 == 0 and run.raw_status().state == "finished":
                break
            time.sleep(0.0005)
    else:  # a random moment of the training proper (its length: the reference run's)
        while run.raw_status().phase != "training" and run.raw_status().state != "finished":
            time.sleep(0.005)
        time.sleep(rng.uniform(0, train_s))
    trial.in_checkpoint_write = bool(checkpoint_temp_files(run))
    with contextlib.suppress(ProcessLookupError):  # it may have just ended
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    trial.killed_at = run.raw_status().iteration
    if run.raw_status().state == "finished":
        trial.note = "the run ended before the kill"
        return False
    return True


def check_files(run, trial: Trial) -> None:
    """Every file a reader opens must parse; every checkpoint must load."""
    from bvae_tui.engine.train.checkpoint import load_checkpoint

    for path in (run.status_path, run.config_path):
        try:
            strict_load(path.read_text())
        except (OSError, ValueError):
            trial.corrupt_files.append(path.name)
    if run.metrics_path.exists():
        text = run.metrics_path.read_text()
        lines = text.split("\n")
        complete, last = lines[:-1], lines[-1]
        trial.torn_lines = int(bool(last))  # no newline yet: mid-write
        for i, line in enumerate(complete):
            try:
                strict_load(line)
            except ValueError:
                trial.corrupt_files.append(f"metrics.jsonl line {i + 1}")
    for path in (run.last_checkpoint, run.previous_checkpoint):
        if path.exists():
            try:
                load_checkpoint(path)
            except Exception:  # noqa: BLE001 - any failure to load is what we count
                trial.corrupt_files.append(f"checkpoints/{path.name}")


def check_rows(run, reference: dict[int, dict], total: int, trial: Trial) -> None:
    rows = [strict_load(line) for line in run.metrics_path.read_text().splitlines()]
    iters = [r["iter"] for r in rows]
    trial.duplicated_rows = len(iters) - len(set(iters))
    if iters != sorted(set(iters)):
        trial.duplicated_rows = max(trial.duplicated_rows, 1)
    trial.missing_rows = len(set(range(LOG_EVERY, total + 1, LOG_EVERY)) - set(iters))
    for row in rows:
        ref = reference.get(row["iter"])
        if ref is None or any(abs(row[k] - ref[k]) > 1e-6 * max(1.0, abs(ref[k]))
                              for k in ("loss", "recon", "kl")):
            trial.mismatched_rows += 1


def run_trial(i: int, args: argparse.Namespace, env: dict[str, str], runs: Path,
              reference: dict[int, dict], train_s: float, rng: random.Random) -> Trial:
    from bvae_tui.engine.runs.store import Run

    trial = Trial(MODES[i % len(MODES)])
    every = 10 if trial.mode == "checkpoint write" else 50  # many writes to catch one in
    out = bvae(*train_args(args), "--checkpoint-every", str(every), "--name", f"trial-{i}",
               "--detach", env=env)
    if out.returncode != 0:
        raise RuntimeError(f"bvae train failed: {out.stderr.strip()}")
    run = Run(runs / out.stdout.strip())
    killed = kill_worker(run, trial.mode, rng, train_s, trial)
    check_files(run, trial)
    if not killed:
        return _done(run, args, trial)
    trial.resumed_from = "checkpoint" if (run.last_checkpoint.exists()
                                          or run.previous_checkpoint.exists()) else "0"
    resumed = bvae("resume", run.id, env=env)
    status = run.status()
    if resumed.returncode != 0 or status.state != "finished":
        trial.failed_resumes = 1
        trial.note = (resumed.stderr.strip().splitlines() or [status.error or "?"])[-1]
    else:
        check_rows(run, reference, args.iterations, trial)
        trial.debris_left = temp_files(run)
    return _done(run, args, trial)


def _done(run, args: argparse.Namespace, trial: Trial) -> Trial:
    from bvae_tui.engine.runs.store import delete_run

    if not args.keep:
        delete_run(run)
    return trial


def train_args(args: argparse.Namespace) -> list[str]:
    return ["train", "--dataset", "dsprites-mini", "--device", "cpu", "--batch-size",
            str(args.batch_size), "--z-dim", "4", "--iterations", str(args.iterations),
            "--log-every", str(LOG_EVERY), "--checkpoint-minutes", "0.05", "--preview-every",
            "0", "--seed", "1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", default=None, help="keep the runs (and data) in this folder")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bvae-kill-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        runs, data = base / "runs", base / "data"
        env = dict(os.environ, BVAE_RUNS_DIR=str(runs), BVAE_DATA_DIR=str(data),
                   OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
        prepared = bvae("data", "prepare", "dsprites-mini", env=env)
        if prepared.returncode != 0:
            raise SystemExit(f"cannot prepare dsprites-mini: {prepared.stderr.strip()}")
        started = time.time()
        out = bvae(*train_args(args), "--name", "reference", env=env)
        if out.returncode != 0:
            raise SystemExit(f"the reference run failed: {out.stderr.strip()}")
        from bvae_tui.engine.runs.store import find_run

        ref_run = find_run(runs, "reference")
        reference = {r["iter"]: r for r in map(strict_load,
                                                ref_run.metrics_path.read_text().splitlines())}
        train_s = 0.8 * max(r["elapsed"] for r in reference.values())  # most of its training
        trials = []
        for i in range(args.trials):
            trial = run_trial(i, args, env, runs, reference, train_s, rng)
            trials.append(trial)
            if not args.json:
                during = " (checkpoint write)" if trial.in_checkpoint_write else ""
                print(f"trial {i + 1:3d} {trial.mode:16s} killed at iteration "
                      f"{trial.killed_at}{during}; resumed from {trial.resumed_from or '-'}"
                      + "".join(f"; {k} {v}" for k in MUST_BE_ZERO if (v := getattr(trial, k)))
                      + (f"; {trial.note}" if trial.note else ""), flush=True)
    summary = summarise(trials, time.time() - started)
    if args.json:
        print(json.dumps({"summary": summary, "trials": [asdict(t) for t in trials]}, indent=2))
    else:
        print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()))
    return 1 if any(summary[k] for k in MUST_BE_ZERO) else 0


def summarise(trials: list[Trial], seconds: float) -> dict[str, object]:
    def total(key: str) -> int:
        return sum(len(v) if isinstance(v := getattr(t, key), list) else v for t in trials)

    return {
        "trials": len(trials),
        **{k: total(k) for k in MUST_BE_ZERO},
        "kills in the first second": sum(t.mode == "first second" for t in trials),
        "kills during a checkpoint write": sum(t.in_checkpoint_write for t in trials),
        "kills while training": sum(t.mode == "training" for t in trials),
        "resumed from 0": sum(t.resumed_from == "0" for t in trials),
        "not killed (ended first)": sum(not t.resumed_from for t in trials),
        "torn metrics lines (skipped by readers)": total("torn_lines"),
        "seconds": round(seconds),
    }


if __name__ == "__main__":
    sys.exit(main())
