"""Where the time to the first training step goes: `bvae train` on prepared dSprites, by phase.

Each repeat launches a fresh process that runs the real `bvae train` (the CLI's ``main``, with
``--log-every 1``) after timing its imports one by one, with timing wrappers around the trainer's
set-up steps; the parent prints the median of each phase over the repeats. The imports come
before the CLI's parsing here (in `bvae train` torch is imported after it), which moves time
between rows but not the total.

    .venv/bin/python benchmarks/first_step_profile.py --data-dir data --repeats 5

Phases: ``python`` (interpreter and site start-up), the imports (``cli`` is typer, rich and the
command modules; ``engine`` the project's modules over torch), ``parse+checks`` (typer's parsing,
the launch checks, the run directory), ``trainer set-up`` (status writes, device, threads),
``precision`` (``--amp auto``), ``data``, ``model+optimiser``, ``first step`` and ``first row``
(the metrics row after it: the end of what `bvae bench` times).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("python", "cli imports", "numpy", "torch", "engine imports", "parse+checks",
          "trainer set-up", "precision", "data", "model+optimiser", "first step", "first row")


def child(marks_path: str, launched: float, argv: list[str]) -> None:
    """Run `bvae train` in this process, noting when each phase ends."""
    marks: dict[str, float] = {"python": time.time() - launched}
    clock = time.perf_counter
    start = clock()

    def mark(name: str) -> None:
        nonlocal start
        now = clock()
        marks[name] = marks.get(name, 0.0) + now - start
        start = now

    import bvae_tui.cli.main as cli  # typer, rich, every command module
    mark("cli imports")
    import numpy  # noqa: F401
    mark("numpy")
    import torch  # noqa: F401
    mark("torch")
    from bvae_tui.engine.train import precision, step, trainer
    mark("engine imports")

    def before(name: str, fn):  # the time up to this call belongs to ``name``
        def wrapper(*args, **kwargs):
            mark(name)
            return fn(*args, **kwargs)
        return wrapper

    def after(name: str, fn):  # the call itself belongs to ``name``
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            finally:
                mark(name)
        return wrapper

    trainer.train = before("parse+checks", trainer.train)
    precision.resolve = after("precision", before("trainer set-up", precision.resolve))
    trainer.open_dataset = before("precision", trainer.open_dataset)  # (a print in between)
    trainer.build_model = before("data", trainer.build_model)
    call = step.TrainStep.__call__

    def first_call(self, *args, **kwargs):
        if "first step" in marks:
            return call(self, *args, **kwargs)
        mark("model+optimiser")
        try:
            return call(self, *args, **kwargs)
        finally:
            mark("first step")

    step.TrainStep.__call__ = first_call
    sys.argv = ["bvae", *argv]
    with contextlib.suppress(SystemExit):  # typer exits when the command returns
        cli.main()
    runs = Path(argv[argv.index("--runs-dir") + 1])
    (row,) = [json.loads(line) for line in next(runs.glob("*/metrics.jsonl")).open()][:1]
    marks["first row"] = row["time"] - launched - sum(marks.values())
    Path(marks_path).write_text(json.dumps(marks))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # one measured process: --child MARKS LAUNCHED train ...
        child(argv[1], float(argv[2]), argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--data-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bvae-first-step-") as tmp:
            train = ["train", "--dataset", args.dataset, "--device", args.device,
                     "--iterations", "2", "--log-every", "1", "--preview-every", "0",
                     "--runs-dir", f"{tmp}/runs",
                     *(["--data-dir", args.data_dir] if args.data_dir else [])]
            marks = f"{tmp}/marks.json"
            launched = time.time()
            subprocess.run([sys.executable, __file__, "--child", marks, str(launched), *train],
                           check=True, stdout=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
            rows.append(json.loads(Path(marks).read_text()))
    print(f"time to first step, median of {args.repeats} (load {os.getloadavg()[0]:.1f}):")
    for phase in PHASES:
        values = [r.get(phase, 0.0) for r in rows]
        print(f"  {phase:16s} {statistics.median(values) * 1000:7.0f} ms   "
              + " ".join(f"{v * 1000:.0f}" for v in values))
    totals = [sum(r.values()) for r in rows]
    print(f"  {'total':16s} {statistics.median(totals) * 1000:7.0f} ms   "
          + " ".join(f"{v * 1000:.0f}" for v in totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
