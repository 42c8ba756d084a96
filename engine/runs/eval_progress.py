"""Reading a detached evaluation's progress (eval_job.json): what the runs table, `bvae runs` and
the monitor say about it. Light (no store, no torch), so the run store's summary can use it;
:mod:`bvae_tui.engine.runs.eval_job` launches and runs the evaluations."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

from bvae_tui.engine.runs.files import read_json
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.records import EvalJob

QUEUED_GRACE_S = 60.0  # a queued job without a pid yet (its process is starting) is not lost


def read_job(path: Path) -> EvalJob | None:
    """eval_job.json as written (None: no detached evaluation ever ran)."""
    data = read_json(path)
    return EvalJob.from_dict(data) if data is not None else None


def with_liveness(job: EvalJob | None) -> EvalJob | None:
    """``job`` with ``lost`` worked out: queued or running, but its process is gone."""
    if job is None or job.state not in ("queued", "running"):
        return job
    if job.host and job.host != socket.gethostname():
        return job  # another machine's process: its pid means nothing here
    if job.pid is None:
        if job.state == "queued" and time.time() - (job.updated or 0.0) < QUEUED_GRACE_S:
            return job
    elif worker_alive(job.pid, job.pid_start):
        return job
    return dataclasses.replace(job, state="lost")


def progress_text(job: EvalJob | None) -> str | None:
    """What the runs table and the monitor say about a detached evaluation (None: nothing,
    e.g. it finished: the scores say the rest)."""
    if job is None or job.state == "finished":
        return None
    mode = " (fast)" if job.fast else ""
    if job.state == "queued":
        return f"evaluation queued{mode}"
    if job.state == "failed":
        return f"evaluation failed: {job.error or 'no reason given'}"
    if job.state == "lost":
        return "evaluation stopped (its process is gone); evaluate again"
    stage = job.stage or "starting"
    if stage == "encoding images" and job.stage_total:
        return f"evaluating{mode}: encoding {job.stage_done or 0}/{job.stage_total} images"
    if stage.startswith("scoring") and job.total:
        return f"evaluating{mode} {job.done or 0}/{job.total} metrics ({stage[8:]})"
    return f"evaluating{mode}: {stage}"
