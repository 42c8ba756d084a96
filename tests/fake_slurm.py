"""A fake Slurm for tests: sbatch, srun, scancel, scontrol and sacct that run jobs on this machine.

:func:`install` writes the programs into a folder that a test puts first on PATH; submitit then
goes down its real Slurm code path (it only ever runs these programs). State lives under
``$FAKE_SLURM_DIR``: one JSON file per job (guarded by an flock), an events log, and each
running step's pid.

- ``sbatch SCRIPT``: reads the ``#SBATCH`` lines (``--array=0-N%P``, ``--output``), prints
  ``Submitted batch job ID`` and starts a controller process that runs the array's tasks with
  at most P at once, each as ``bash SCRIPT`` in its own session with the SLURM_* variables set.
- ``srun [--output F] [--error F] ... CMD``: records its pid as the job step and execs CMD.
- ``scancel ID [--signal SIG]``: with a signal, sends it to the step (what Slurm does before a
  time limit); without, cancels (SIGTERM to the step, pending tasks never start; SIGKILL after
  ``KILL_WAIT_S``).
- ``scontrol requeue ID``: the task starts again once its process exits.
- ``sacct -o JobID,State,NodeList --parsable2 -j ID``: the states, one line per task.

What it is still for: fast, machine-independent checks of submitit's code path (sbatch options,
array ids, events with timings such as the array's parallelism) in tests/test_sweep_slurm.py.
What a real cluster does is owned by tests/test_slurm_real.py (Debian's Slurm 22.05, started by
tests/slurm_cluster.py): array task ids and pending reasons, scancel and the worker's
checkpoint, the time-limit signal and submitit's requeue, ``scontrol requeue`` (real Slurm sends
SIGTERM, which this fake does not, and holds a requeued job two minutes), a node failure
(slurmd SIGKILLed), sacct on a cluster with and without accounting, and sbatch's refusals. Do
not read this fake's behaviour as Slurm's where those tests say otherwise.

Not a test module; also run as a script (``python fake_slurm.py TOOL ARGS``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

TOOLS = ("sbatch", "srun", "scancel", "scontrol", "sacct", "squeue")
KILL_WAIT_S = 30.0
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write the fake programs into ``bin_dir``; the environment variables a test sets."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    me = Path(__file__).resolve()
    for tool in TOOLS:
        path = bin_dir / tool
        path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(me))} "
                        f"{tool} \"$@\"\n")
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_SLURM_DIR": str(state_dir)}


# --------------------------------------------------------------------------------------------
# State


def _root() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


@contextlib.contextmanager
def _job(job: str):
    """The state of job ``job`` (its array id), locked; written back at the end."""
    path = _root() / f"job-{job}.json"
    with open(_root() / f"job-{job}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text())
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)


def _event(**fields) -> None:
    with open(_root() / "events.jsonl", "a") as fh:
        fh.write(json.dumps({"time": time.time(), **fields}) + "\n")


def events() -> list[dict]:
    path = _root() / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _targets(job_id: str) -> tuple[str, list[str]]:
    """(array id, task keys) that a job id names: ``A`` (all tasks) or ``A_i``."""
    array, _, task = job_id.partition("_")
    with _job(array) as state:
        keys = list(state["tasks"]) if not task else [task]
    return array, keys


# --------------------------------------------------------------------------------------------
# The programs


def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    options = {}
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            options[key] = shlex.split(value)[0] if value else True
    with open(_root() / "counter.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = _root() / "counter"
        job = int(counter.read_text()) + 1 if counter.exists() else 1000
        counter.write_text(str(job))
    tasks, parallelism = ["-"], 1
    if "array" in options:
        match = re.fullmatch(r"0-(\d+)(?:%(\d+))?", str(options["array"]))
        if match is None:
            print(f"sbatch: error: unsupported --array {options['array']}", file=sys.stderr)
            return 1
        tasks = [str(i) for i in range(int(match.group(1)) + 1)]
        parallelism = int(match.group(2) or len(tasks))
    state = {"script": str(script.resolve()), "options": options, "parallelism": parallelism,
             "tasks": {t: {"state": "PENDING", "pid": None, "cancel": False, "requeue": False,
                           "runs": 0} for t in tasks}}
    (_root() / f"job-{job}.json").write_text(json.dumps(state))
    _event(event="submit", job=str(job), options=options)
    with open(_root() / f"controller-{job}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "controller",
                                 str(job)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    (_root() / f"controller-{job}.pid").write_text(str(proc.pid))
    print(f"Submitted batch job {job}")
    return 0


def _expand(pattern: str, array: str, task: str) -> str:
    job = array if task == "-" else f"{array}_{task}"
    return (pattern.replace("%A", array).replace("%a", task).replace("%j", job)
            .replace("%t", "0"))


def controller(args: list[str]) -> int:
    """Run the tasks of job ``args[0]``, at most ``parallelism`` at once, until all ended."""
    array = args[0]
    running: dict[str, subprocess.Popen] = {}
    kill_at: dict[str, float] = {}
    while True:
        with _job(array) as state:
            tasks, script = state["tasks"], state["script"]
            for key, proc in list(running.items()):
                task = tasks[key]
                if proc.poll() is None:
                    if (task["cancel"] or task["requeue"]) and key not in kill_at:
                        kill_at[key] = time.time() + KILL_WAIT_S
                    if key in kill_at and time.time() > kill_at[key]:
                        os.killpg(proc.pid, signal.SIGKILL)
                    continue
                del running[key]
                kill_at.pop(key, None)
                name = array if key == "-" else f"{array}_{key}"
                if task["requeue"] and not task["cancel"]:
                    task.update(state="PENDING", requeue=False, pid=None)
                    _event(event="requeue", job=name)
                else:
                    task.update(state="CANCELLED" if task["cancel"] else
                                "COMPLETED" if proc.returncode == 0 else "FAILED", pid=None)
                _event(event="end", job=name, code=proc.returncode, state=task["state"])
            for key, task in tasks.items():
                if task["state"] == "PENDING" and task["cancel"]:
                    task["state"] = "CANCELLED"
                if task["state"] == "PENDING" and len(running) < state["parallelism"]:
                    running[key] = _start(array, key, script, state["options"])
                    task.update(state="RUNNING", pid=running[key].pid, runs=task["runs"] + 1)
                    _event(event="start", job=array if key == "-" else f"{array}_{key}")
            if not running and all(t["state"] in ENDED for t in tasks.values()):
                return 0
        time.sleep(0.1)


def _start(array: str, key: str, script: str, options: dict) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(SLURM_JOB_ID=array if key == "-" else str(int(array) * 1000 + int(key)),
               SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_PROCID="0",
               SLURM_LOCALID="0", SLURM_JOB_NODELIST="localhost", FAKE_SLURM_TASK=key,
               FAKE_SLURM_ARRAY=array)
    if key != "-":
        env.update(SLURM_ARRAY_JOB_ID=array, SLURM_ARRAY_TASK_ID=key)
    out = _expand(str(options.get("output", os.devnull)), array, key)
    with open(out, "ab") as log:
        return subprocess.Popen(["bash", script], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def srun(args: list[str]) -> int:
    out = err = None
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            value = _expand(args.pop(0), os.environ["FAKE_SLURM_ARRAY"],
                            os.environ["FAKE_SLURM_TASK"])
            out, err = (value, err) if flag == "--output" else (out, value)
    key = os.environ["FAKE_SLURM_TASK"]
    array = os.environ["FAKE_SLURM_ARRAY"]
    (_root() / f"step-{array}_{key}.pid").write_text(str(os.getpid()))
    if out:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
    if err:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
    cmd = shlex.split(" ".join(args)) if len(args) == 1 else args
    os.execvp(cmd[0], cmd)
    return 1


def _signal_step(array: str, key: str, sig: int) -> None:
    path = _root() / f"step-{array}_{key}.pid"
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        os.kill(int(path.read_text()), sig)


def scancel(args: list[str]) -> int:
    sig = None
    ids = []
    while args:
        arg = args.pop(0)
        if arg.startswith("--signal"):
            name = arg.split("=", 1)[1] if "=" in arg else args.pop(0)
            sig = getattr(signal, name if name.startswith("SIG") else f"SIG{name}")
        else:
            ids.append(arg)
    for job_id in ids:
        array, keys = _targets(job_id)
        _event(event="scancel", job=job_id, signal=None if sig is None else sig.name)
        for key in keys:
            if sig is not None:
                _signal_step(array, key, sig)
                continue
            with _job(array) as state:
                task = state["tasks"][key]
                if task["state"] not in ENDED:
                    task["cancel"] = True
                running = task["state"] == "RUNNING"
            if running:
                _signal_step(array, key, signal.SIGTERM)
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] != ["requeue"]:
        print(f"scontrol: unsupported {args}", file=sys.stderr)
        return 1
    array, keys = _targets(args[1])
    with _job(array) as state:
        for key in keys:
            state["tasks"][key]["requeue"] = True
    _event(event="scontrol-requeue", job=args[1])
    return 0


def sacct(args: list[str]) -> int:
    ids = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for array in ids:
        with _job(array) as state:
            for key, task in state["tasks"].items():
                name = array if key == "-" else f"{array}_{key}"
                print(f"{name}|{task['state']}|localhost")
    return 0


def squeue(args: list[str]) -> int:
    for path in sorted(_root().glob("job-*.json")):
        array = path.stem[4:]
        with _job(array) as state:
            for key, task in state["tasks"].items():
                if task["state"] not in ENDED:
                    print(f"{array}_{key} {task['state']}")
    return 0


def stop_controllers(state_dir: Path) -> None:
    """Kill every controller and task still running (a test's clean-up)."""
    for path in state_dir.glob("job-*.json"):
        with contextlib.suppress(Exception):
            for task in json.loads(path.read_text())["tasks"].values():
                if task.get("pid"):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(task["pid"], signal.SIGKILL)
    for path in state_dir.glob("controller-*.pid"):
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.kill(int(path.read_text()), signal.SIGKILL)


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"sbatch": sbatch, "srun": srun, "scancel": scancel, "scontrol": scontrol,
              "sacct": sacct, "squeue": squeue, "controller": controller}[tool](rest))
