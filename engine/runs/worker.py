"""The detached training worker: ``python -m bvae_tui.engine.runs.worker RUN_DIR [--resume]``.

Started by :func:`bvae_tui.engine.runs.launch.launch` in a new process session. SIGTERM or SIGINT
asks it to stop: it finishes the current step, writes a checkpoint and marks the run ``stopped``.
SIGHUP is ignored, so a dropped SSH session does not stop it. It holds the run's lock
(:mod:`bvae_tui.engine.runs.lock`) for its whole life; a second worker on the same run exits with
status 3 and one line naming the holder, before it writes anything.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.objective_info import TERM_FIELDS
from bvae_tui.engine.runs.lock import RunLock
from bvae_tui.engine.runs.process import on_stop_signals
from bvae_tui.engine.runs.records import MetricsRow
from bvae_tui.engine.runs.store import Run


def main(argv: list[str] | None = None) -> int:
    # Handlers first: a SIGTERM that arrives while torch is still importing must stop cleanly too.
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    on_stop_signals(request_stop)

    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.runs.worker",
                                     description="train one run directory (detached worker)")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run's last checkpoint")
    parser.add_argument("--lr", type=float, default=None, help="new learning rate (a resume)")
    parser.add_argument("--device", default=None, help="new device (a resume)")
    parser.add_argument("--lock-fd", type=int, default=None,
                        help="descriptor of the run's lock, taken by the launcher (else the "
                             "worker takes it)")
    args = parser.parse_args(argv)
    run = Run(args.run_dir.resolve())
    if not run.config_path.exists():
        print(f"error: {run.path} is not a run directory", file=sys.stderr)
        return 2
    # The lock before anything is written: a second worker on this run stops here, in one line.
    lock = RunLock(run)
    try:
        lock.adopt(args.lock_fd) if args.lock_fd is not None else lock.acquire()
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 3

    from bvae_tui.engine.train.trainer import train

    print(f"worker pid {os.getpid()} training {run.id}"
          f"{' (resume)' if args.resume else ''}", flush=True)

    def log_row(row: MetricsRow) -> None:  # a readable line per metrics row for worker.log
        c = "" if row.c is None else f" C {row.c:.2f}"
        # The objective's own terms: only its objective logs each, the others leave it None.
        own = "".join(f" {t} {v:.3f}" for t in TERM_FIELDS
                      if (v := getattr(row, t)) is not None)
        print(f"iter {row.iter} loss {row.loss:.3f} recon {row.recon:.3f} "
              f"kl {row.kl:.3f}{c}{own} {row.img_per_s:.0f} img/s", flush=True)

    changes = {k: v for k, v in (("lr", args.lr), ("device", args.device)) if v is not None}
    state = train(run, resume=args.resume, should_stop=lambda: stop_requested, on_row=log_row,
                  changes=changes)
    # Free the run as soon as its final state is written: whoever saw that state may resume
    # it at once, and the interpreter's shutdown can take a while.
    lock.release()
    error = run.raw_status().error if state == "failed" else None
    # The reason goes to worker.log here, not from the trainer, so a foreground `bvae train`
    # (which reports it itself) does not print it twice.
    print(f"worker done: {state}" + (f": {error}" if error else ""), flush=True)
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
