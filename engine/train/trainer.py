"""The training loop: one plain function over a run directory.

The whole dataset sits on the training device as one uint8 tensor; each step draws a batch by
index (a seeded ``torch.Generator`` walks through shuffled epochs) and converts it to float on the
device. Per-step statistics stay on the device in a small buffer, so a GPU step never waits for
the host; every ``log_every`` steps one transfer turns them into a ``metrics.jsonl`` row averaged
over the interval, with the objective's own terms; warnings about its estimates go to stderr
(worker.log). Every ``probe_interval`` steps a probe (engine/train/probes.py) appends the
current encoder's MI matrix and MIG on a fixed sample to ``probes.jsonl``; a probe that fails
is reported once and training goes on. Checkpoints hold everything needed to continue exactly:
model, optimiser, the objective's state (FactorVAE's discriminator and its optimiser),
iteration, the torch / CUDA / NumPy / Python RNG states and the batch sampler's state, so a run
stopped and resumed on the CPU reproduces the uninterrupted run.

Outcomes end up in ``status.json``: ``finished``, ``stopped`` (``should_stop`` said so; a
checkpoint is written first) or ``failed`` with a one-line reason (missing data, non-finite loss
with its iteration, out of memory with a hint).
"""

from __future__ import annotations

import math
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.datasets.tensors import DeviceImages
from bvae_tui.engine.errors import ConfigError, DeviceError, RunError
from bvae_tui.engine.runs.devices import resolve_device
from bvae_tui.engine.runs.guard import open_append
from bvae_tui.engine.runs.health import EstimateWatch
from bvae_tui.engine.runs.process import process_start_time
from bvae_tui.engine.runs.records import MetricsRow
from bvae_tui.engine.runs.recovery import remove_debris
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.train import fastpath, precision
from bvae_tui.engine.train.adam import load_optimizer_state, make_optimizer
from bvae_tui.engine.train.checkpoint import load_checkpoint, save_checkpoint
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.objectives import build_objective, recon_distribution
from bvae_tui.engine.train.process import configure_process, is_cuda
from bvae_tui.engine.train.sampler import BatchSampler, rng_state, set_rng_state
from bvae_tui.engine.train.step import TrainStep
from bvae_tui.errors import UserError, brief

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

HEARTBEAT_S = 1.0  # status.json refresh while training
PROGRESS_S = 0.2  # on_progress callback rate (the foreground progress bar)


class NonFiniteLoss(Exception):
    """A step's loss (or a row's mean) is NaN or infinite: the run fails, its last checkpoint
    (saved before this happened) stays, and a resume with a lower lr continues from it."""

    def __init__(self, run: Run, iteration: int, value: float, saved: int | None, lr: float):
        advice = f"'bvae resume {run.id} --lr {lr / 4:g}'"
        where = (f"the last good checkpoint is at iteration {saved}; continue from it with a "
                 f"lower learning rate: {advice}" if saved is not None else
                 f"no checkpoint was saved before it; {advice} trains it again from 0 with a "
                 "lower learning rate")
        super().__init__(f"loss became non-finite ({value}) at iteration {iteration}; {where}")
        self.iteration = iteration


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def train(run: Run, resume: bool = False,
          on_row: Callable[[MetricsRow], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          on_progress: Callable[[int], None] | None = None,
          changes: dict[str, Any] | None = None) -> str:
    """Train ``run`` (from its last checkpoint when ``resume``); return the final state.

    ``changes``: new values of config fields a resume may change (``lr``, ``device``), recorded
    in config.json at the iteration training continues from.

    ``on_row(row)`` sees every metrics row, ``on_progress(iteration)`` is called a few times a
    second, and ``should_stop()`` is polled between steps (the worker's SIGTERM handler and the
    foreground Ctrl-C handler set it). Unexpected exceptions mark the run failed and propagate.
    """
    pid = os.getpid()
    now = time.time()
    remove_debris(run)  # the caller holds the run's lock: no other writer's temp files exist
    run.write_status(state="running", pid=pid, pid_start=process_start_time(pid), started=now,
                     host=socket.gethostname(), heartbeat=now, error=None, eval_error=None,
                     phase="starting")
    try:
        return _train_loop(run, resume, on_row, should_stop or (lambda: False), on_progress,
                           changes or {})
    except NonFiniteLoss as exc:
        return _fail(run, str(exc), iteration=exc.iteration)
    except UserError as exc:
        return _fail(run, str(exc))
    except KeyboardInterrupt:
        run.write_status(state="stopped", phase=None,
                         error="interrupted mid-step; resume continues from the last checkpoint")
        return "stopped"
    except Exception as exc:
        if _is_oom(exc):
            cfg = run.config
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # let the next run on this GPU start clean
            return _fail(run, f"out of memory on {run.raw_status().device or 'the device'} "
                              f"at batch size {cfg.batch_size}; try a smaller --batch-size, "
                              "--device cpu, or a GPU with more free memory (--gpu auto)")
        _fail(run, f"internal error: {type(exc).__name__}: {brief(exc, 200)} (see worker.log)")
        raise


def _resume_state(run: Run) -> dict[str, Any] | None:
    """The checkpoint to resume from: ``last.pt``, else (saying so) the one before it; None when
    the run never saved one (it starts from 0)."""
    problems = []
    for path in (run.last_checkpoint, run.previous_checkpoint):
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        try:
            state = load_checkpoint(path)
        except RunError:  # cut short, damaged, or not a checkpoint of ours
            problems.append(f"{path.name} is corrupt")
            continue
        if problems:
            _warn(f"{'; '.join(problems)}; resuming from {path.name}, the checkpoint before it "
                  f"(iteration {int(state['iteration'])})")
        return state
    if all(p.endswith("missing") for p in problems):
        return None
    raise RunError(f"run {run.id} has no readable checkpoint ({'; '.join(problems)}); "
                   f"'bvae resume {run.id} --restart' trains it again from 0")


def _record_changes(run: Run, iteration: int, old: TrainConfig, new: TrainConfig) -> None:
    now = time.time()
    entries = [{"iteration": iteration, "time": now, "field": name, "old": getattr(old, name),
                "new": getattr(new, name)}
               for name in new.to_dict() if getattr(old, name) != getattr(new, name)]
    run.update_record(config=new.to_dict(), changes=[*run.record().changes, *entries])


def _discard_checkpoints(run: Run) -> None:
    """A start from 0 (also ``--restart``): an older attempt's checkpoints must not be resumed
    later, after the metrics they belong to are gone."""
    for path in (run.last_checkpoint, run.previous_checkpoint):
        path.unlink(missing_ok=True)


def _fail(run: Run, reason: str, **fields: Any) -> str:
    run.write_status(state="failed", error=reason, phase=None, **fields)
    return "failed"


def _train_loop(run: Run, resume: bool, on_row: Callable[[MetricsRow], None] | None,
                should_stop: Callable[[], bool],
                on_progress: Callable[[int], None] | None, changes: dict[str, Any]) -> str:
    saved_cfg: TrainConfig = run.config
    cfg = saved_cfg.replace(**changes).validate()
    # -- device --------------------------------------------------------------------------------
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # cuda:N == NVML's GPU N
    device = resolve_device(cfg.device)
    if is_cuda(device) and not torch.cuda.is_available():
        raise DeviceError(f"{device} was requested but this PyTorch build cannot use CUDA; "
                          "use --device cpu or install a CUDA build of torch")
    run.write_status(device=device, total=cfg.iterations, phase="loading data")
    configure_process(device)
    used = precision.resolve(cfg.amp, device)  # --amp auto may measure, once per machine
    print(f"precision: {used.describe()}", flush=True)  # worker.log, or above the progress bar

    # -- data ----------------------------------------------------------------------------------
    dataset = open_dataset(cfg.dataset, run.data_dir, image_size=cfg.image_size)
    for note in dataset.meta.get("warnings") or []:  # e.g. a folder's incomplete factor grid
        _warn(note)
    if cfg.batch_size > dataset.n:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the dataset "
                          f"({dataset.n} images); choose at most {dataset.n}")
    # The run's config says which data it saw: real dSprites or the procedural stand-in.
    run.update_record(dataset_source=dataset.source, dataset_count=dataset.n,
                      precision=used.to_dict())
    dist = recon_distribution(cfg)
    data = DeviceImages(dataset, device)

    # -- model, optimiser, RNG (seeded first so the init is reproducible) -----------------------
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg.architecture, data.channels, cfg.z_dim, cfg.image_size)
    objective = build_objective(cfg, dist, data.n, device)  # a network of its own, if any
    sampler = BatchSampler(data.n, cfg.batch_size, cfg.seed, device)
    iteration, elapsed = 0, 0.0
    state = _resume_state(run) if resume else _discard_checkpoints(run)
    if state is not None:
        model.load_state_dict(state["model"])
        iteration, elapsed = int(state["iteration"]), float(state.get("elapsed", 0.0))
    model.to(device)
    net = fastpath.prepare_model(model, cfg)  # may be channels-last / compiled
    optimizer = make_optimizer(model.parameters(), cfg, device)
    if state is not None:
        load_optimizer_state(optimizer, state["optimizer"])
        objective.load_state_dict(state.get("objective") or {})
        for group in optimizer.param_groups:  # the config's, which a resume may have changed
            group["lr"] = cfg.lr
        set_rng_state(state["rng"], device, sampler)
    if changes:
        _record_changes(run, iteration, saved_cfg, cfg)
    step = TrainStep(net, optimizer, cfg.replace(amp=used.used), device, dist, objective)
    run.truncate_metrics(iteration)  # a fresh start, or rows past the checkpoint, go
    run.truncate_probes(iteration)  # likewise: a resumed run probes those steps again

    # -- bookkeeping ---------------------------------------------------------------------------
    z = cfg.z_dim
    buf_len = max(1, min(cfg.log_every, cfg.iterations))
    terms = objective.terms  # the objective's own metrics fields, e.g. tc
    # Float64, so that a row's mean of finite steps cannot overflow (float32 steps near its
    # limit did, and wrote Infinity).
    scalars = torch.zeros(buf_len, 3 + len(terms), device=device,
                          dtype=torch.float64)  # loss, recon, kl, terms
    vectors = torch.zeros(3, z, device=device, dtype=torch.float64)  # sums: kl, mu, variance
    n_in, c_sum = 0, 0.0
    t_last = time.time()
    overhead = 0.0  # seconds spent on checkpoints / previews in this interval (not img/s)
    last_kl: list[float] | None = None
    watch = EstimateWatch()
    checkpoint_iteration = iteration
    saved_any = state is not None  # the checkpoint a NaN sends the user back to
    last_checkpoint = time.time()
    checkpoint_s = cfg.checkpoint_minutes * 60 or float("inf")

    def non_finite(at: int, value: float) -> NonFiniteLoss:
        return NonFiniteLoss(run, at, value, checkpoint_iteration if saved_any else None,
                             cfg.lr)

    def check_finite() -> None:
        values = scalars[:n_in, :3].cpu()  # loss, recon, kl
        bad = (~torch.isfinite(values)).any(1).nonzero()
        if len(bad):
            i = int(bad[0])
            raise non_finite(iteration - n_in + 1 + i, float(values[i].sum()))

    def flush(fh) -> MetricsRow:
        nonlocal n_in, c_sum, t_last, overhead, elapsed, last_kl
        check_finite()
        means = scalars[:n_in].mean(0).tolist()
        vec = (vectors / n_in).tolist()
        if not all(math.isfinite(v) for v in [*means, *vec[0], *vec[1], *vec[2]]):
            raise non_finite(iteration, float("nan"))  # a statistic beside the loss overflowed
        now = time.time()
        dt = now - t_last
        elapsed += dt
        row = MetricsRow(
            iter=iteration, time=now, elapsed=elapsed,
            loss=means[0], recon=means[1], kl=means[2],
            kl_per_latent=vec[0], mu_mean=vec[1], var_mean=vec[2],
            c=c_sum / n_in if cfg.objective == "B" else None,
            img_per_s=n_in * cfg.batch_size / max(dt - overhead, 1e-9),
            **dict(zip(terms, means[3:], strict=True)),
        )
        fh.write(row.to_line())
        fh.flush()
        for message in watch.add(iteration, row.to_dict()):
            _warn(f"{message} (iteration {iteration})")
        last_kl = vec[0]
        vectors.zero_()
        n_in, c_sum, t_last, overhead = 0, 0.0, now, 0.0
        return row

    def checkpoint() -> None:
        nonlocal last_checkpoint, checkpoint_iteration, saved_any
        check_finite()  # never save weights that a NaN step has already spoilt
        save_checkpoint(run.last_checkpoint, keep=run.previous_checkpoint, state={
            "format": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "iteration": iteration, "elapsed": elapsed + time.time() - t_last,
            "arch": cfg.architecture, "channels": data.channels, "z_dim": z,
            "image_size": cfg.image_size,
            "config": cfg.to_dict(), "rng": rng_state(device, sampler),
            "objective": objective.state_dict(),
        })
        last_checkpoint, checkpoint_iteration, saved_any = time.time(), iteration, True

    fixed = None  # the preview's input images, read at the first preview

    def previews() -> None:
        nonlocal fixed
        try:
            # Imported here, and the images read here: neither is needed before the first step.
            from bvae_tui.engine.analysis.visualise import (
                fixed_images,
                to_tensor,
                write_previews,
            )

            if fixed is None:
                fixed = to_tensor(fixed_images(dataset, n=3), device)
            # Previews must not shift the training RNG, or resumed runs would diverge.
            devices = [torch.device(device)] if is_cuda(device) else []
            with torch.random.fork_rng(devices=devices):
                write_previews(model, fixed, run.preview_path("traversal"),
                               run.preview_path("recon"), last_kl)
        except Exception as exc:  # a preview is never worth a training run
            if _is_oom(exc):
                raise
            _warn(f"previews failed at iteration {iteration}: {type(exc).__name__}: {exc}")

    probe_every = cfg.probe_interval
    prober = None  # the probes' fixed sample, drawn at the first probe
    probe_failed = False

    def probe() -> None:
        nonlocal prober, probe_failed
        if probe_failed:
            return
        try:
            from bvae_tui.engine.train.probes import Prober  # not needed before the first probe

            prober = prober or Prober(dataset, device)
            row = prober.probe(model, iteration)
            with open_append(run.probes_path, text=True) as fh:
                fh.write(row.to_line())
        except Exception as exc:  # a probe is never worth a training run, even out of memory
            if _is_oom(exc) and torch.cuda.is_available():
                torch.cuda.empty_cache()  # its large encode batches: give the memory back
            probe_failed = True  # logged once: every later probe would fail the same way
            _warn(f"probe failed at iteration {iteration}, no more probes until the run is "
                  f"resumed: {type(exc).__name__}: {brief(exc, 200)}")

    # -- the loop ------------------------------------------------------------------------------
    run.write_status(state="running", iteration=iteration, phase="training",
                     heartbeat=time.time())
    final = "finished"
    peak_reported = False
    last_beat = last_progress = time.time()
    model.train()
    with open_append(run.metrics_path, text=True) as metrics_file:
        while iteration < cfg.iterations:
            if should_stop():
                final = "stopped"
                break
            iteration += 1
            out = step(data.batch(sampler.next()), iteration)

            with torch.no_grad():  # statistics stay on the device until the row is due
                scalars[n_in] = torch.stack((out["loss"], out["recon"], out["kl"],
                                             *(out[t] for t in terms))).detach()
                vectors[0] += out["kl_per_latent"]
                vectors[1] += out["mu"].float().mean(0)
                vectors[2] += out["logvar"].float().exp().mean(0)
            if out["c"] is not None:
                c_sum += out["c"]
            n_in += 1

            # Rows fall on multiples of log_every (also after a resume from a stop mid-interval),
            # so a resumed run's rows line up with an uninterrupted run's.
            row_due = iteration % cfg.log_every == 0 or iteration == cfg.iterations
            if row_due:
                row = flush(metrics_file)
                if on_row:
                    on_row(row)
                if not peak_reported and is_cuda(device):
                    # A sweep packs further runs onto this GPU by what the first steps took.
                    run.write_status(memory_peak=torch.cuda.max_memory_reserved(device))
                    peak_reported = True
            # By iterations, or by time at a row (a resume from it then writes whole rows).
            if iteration < cfg.iterations and (
                    iteration % cfg.checkpoint_every == 0
                    or (row_due and time.time() - last_checkpoint >= checkpoint_s)):
                t0 = time.time()
                checkpoint()
                overhead += time.time() - t0
            if cfg.preview_every and iteration % cfg.preview_every == 0:
                t0 = time.time()
                previews()
                overhead += time.time() - t0
            if probe_every and iteration % probe_every == 0:
                t0 = time.time()
                probe()
                overhead += time.time() - t0
            now = time.time()
            if now - last_progress >= PROGRESS_S:
                last_progress = now
                if on_progress:
                    on_progress(iteration)
                if now - last_beat >= HEARTBEAT_S:
                    last_beat = now
                    run.write_status(iteration=iteration, heartbeat=now)

        if final == "stopped" and n_in:
            row = flush(metrics_file)  # keep the partial interval's numbers
            if on_row:
                on_row(row)

    # -- the end: checkpoint first, so nothing below can lose the training --------------------
    if iteration != checkpoint_iteration or not saved_any:  # unless this step is saved already
        checkpoint()
    if on_progress:
        on_progress(iteration)
    if final == "stopped":
        run.write_status(state="stopped", iteration=iteration, heartbeat=time.time(),
                         phase=None, error=None)
        return final
    if cfg.preview_every and iteration % cfg.preview_every != 0:
        previews()
    if cfg.eval_at_end:
        run.write_status(iteration=iteration, heartbeat=time.time(), phase="evaluating")
        # imported here: the metrics and baselines are not needed before the first step
        from bvae_tui.engine.analysis.evaluate import evaluate_run

        try:
            evaluate_run(run)
        except Exception as exc:  # the training is done and saved: report, do not fail it
            if not isinstance(exc, UserError):
                traceback.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _warn(f"evaluation failed: {first}")
            run.write_status(eval_error=first)
    run.write_status(state="finished", iteration=iteration, heartbeat=time.time(),
                     phase=None, error=None)
    return final
