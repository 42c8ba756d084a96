"""Scoring a run (or a baseline) with the disentanglement metrics, and recording the result.

``evaluate_run`` loads a run's checkpoint, encodes every image the metrics need once (batched, no
autograd, on the run's device) into a table of encoder means, scores the metrics from that table
(:mod:`bvae_tui.engine.analysis.metrics`) and writes ``eval.json`` in the run directory atomically::

    {"scores": {"betavae": .., "factorvae": .., "mig": ..}, "details": {...}, "params": {...},
     "seed": 0, "fast": false, "iteration": 12000, "checkpoint": "checkpoints/last.pt",
     "dataset": "dsprites", "device": "cpu", "encoded": 737280, "seconds": 171.2,
     "timings": {...}, "created": 1764070000.0}

Baselines (ground truth, raw pixels, PCA, an untrained network) go through the same code:
:mod:`bvae_tui.engine.analysis.baselines`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.datasets.registry import factors_fix, get_spec
from bvae_tui.engine.analysis.baselines import baseline_table_maker, canonical
from bvae_tui.engine.analysis.encode import Progress, model_table_maker
from bvae_tui.engine.analysis.metrics import (
    METRICS,
    Table,
    evaluate_representation,
    parse_metrics,
    resolve_params,
)
from bvae_tui.engine.errors import DataError, DeviceError, RunError
from bvae_tui.engine.runs.devices import resolve_device
from bvae_tui.engine.runs.lock import check_writable
from bvae_tui.engine.runs.records import EvalResult
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.train.checkpoint import checkpoint_path, load_model
from bvae_tui.engine.train.process import configure_process


def require_factors(dataset_name: str, what: str) -> None:
    """A one-line :class:`DataError` when ``dataset_name`` has no ground-truth factors."""
    spec = get_spec(dataset_name)
    if not spec.has_factors:
        raise DataError(f"{what} uses dataset '{dataset_name}', which has no ground-truth "
                        f"factors; disentanglement metrics need them: {factors_fix(spec.name)}")


def run_device(run: Run, device: str | None) -> str:
    """``device`` if given, else the device the run trained on, else its configured one."""
    if device is not None:
        return resolve_device(str(device))
    trained_on = run.raw_status().device or run.config.device
    try:
        return resolve_device(str(trained_on))
    except DeviceError:  # that GPU is gone (run copied to another machine): any will do
        return resolve_device("auto")


def _configure(device: str) -> None:
    """The training fast paths' process set-up (allocator, threads): encoding benefits too."""
    configure_process(device)


def score(dataset: Any, make_table: Callable[[np.ndarray], Table], metrics: Any = None,
          fast: bool = False, seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
          progress: Progress | None = None, exact: bool = False) -> dict[str, Any]:
    """Metrics on one representation: the shared core of runs and baselines (no file written)."""
    names = parse_metrics(metrics)
    chosen = resolve_params(names, fast, params, exact)
    start = time.perf_counter()
    result = evaluate_representation(dataset, make_table, names, chosen, seed, progress)
    return {
        "scores": result["scores"],
        "details": result["details"],
        "params": chosen,
        "seed": int(seed),
        "fast": bool(fast),
        "exact": bool(exact),
        "dataset": getattr(dataset, "name", None),
        "factors": result["factors"],
        "mi": result["mi"],
        "factor_entropy": result["factor_entropy"],
        "encoded": result["encoded"],
        "timings": {k: round(v, 3) for k, v in result["timings"].items()},
        "cpu_timings": {k: round(v, 3) for k, v in result["cpu_timings"].items()},
        "seconds": round(time.perf_counter() - start, 3),
        "created": time.time(),
    }


def evaluate_run(run: Run, metrics: Any = None, fast: bool = False, seed: int = 0,
                 device: str | None = None, checkpoint: str | Path | None = None,
                 params: dict[str, dict[str, Any]] | None = None,
                 progress: Progress | None = None, write: bool = True,
                 exact: bool = False) -> dict[str, Any]:
    """Score ``run``'s checkpoint (default ``last.pt``) and write ``eval.json`` in the run.

    ``metrics``: names or "betavae,mig" (default all); ``fast``: smaller sample counts (recorded);
    ``params``: per-metric overrides of the sample counts (tests use tiny ones); ``exact``:
    disentanglement_lib's own draws and trees (``EXACT_PARAMS``, slower; recorded).
    """
    start = time.perf_counter()
    names = parse_metrics(metrics)  # validate before the slow parts
    resolve_params(names, fast, params, exact)
    if write:  # not after minutes of scoring
        check_writable(run, "write eval.json in")
    cfg = run.config
    require_factors(cfg.dataset, f"run {run.id}")
    dev = run_device(run, device)
    _configure(dev)
    ckpt = checkpoint_path(run, checkpoint)
    model, cfg, iteration = load_model(run, ckpt, dev)
    dataset = open_dataset(cfg.dataset, run.data_dir, image_size=cfg.image_size)
    if int(dataset.channels) != int(model.channels):
        raise RunError(f"run {run.id}: model has {model.channels} channel(s) but dataset "
                       f"'{cfg.dataset}' has {dataset.channels}")
    result = score(dataset, model_table_maker(model, dataset, dev, progress), names, fast, seed,
                   params, progress, exact)
    try:
        shown = str(Path(ckpt).resolve().relative_to(run.path.resolve()))
    except ValueError:
        shown = str(ckpt)
    result.update({
        "run": run.id,
        "iteration": int(iteration),
        "checkpoint": shown,
        "device": dev,
        "arch": getattr(model, "arch", cfg.architecture),
        "z_dim": int(model.z_dim),
        "seconds": round(time.perf_counter() - start, 3),
    })
    if write:
        run.write_eval(merged(run.eval_results(), EvalResult.from_dict(result)))
    return result


# Scores eval.json can hold: the registry's metrics and UDR.
SCORED = (*METRICS, "udr")


def merged(old: EvalResult | None, new: EvalResult) -> EvalResult:
    """``new``, keeping scores of other metrics from ``old`` when they describe the same thing.

    ``bvae eval RUN --metrics mig`` after a full evaluation of the same checkpoint (same seed,
    sample counts and ``--exact`` or not) keeps the BetaVAE and FactorVAE scores (and UDR's,
    written by :mod:`.udr_eval`); anything else replaces the file.
    """
    same = old is not None and all(getattr(old, k) == getattr(new, k) for k in
                                   ("iteration", "checkpoint", "seed", "dataset")) and all(
        bool(getattr(old, k)) == bool(getattr(new, k)) for k in ("fast", "exact"))
    if old is None or not same or not old.scores:
        return new
    kept = {key: {m: v for m, v in getattr(old, key).items()
                  if m in SCORED and m not in new.scores}
            for key in ("scores", "details", "params", "timings", "cpu_timings")}
    merged = dataclasses.replace(new, **{key: {**kept[key], **getattr(new, key)}
                                         for key in kept})
    if merged.mi is None and old.mi is not None:  # e.g. `--metrics dci` after a full evaluation
        merged = dataclasses.replace(merged, mi=old.mi, factor_entropy=old.factor_entropy)
    return merged


def evaluate_baseline(name: str, dataset: str = "dsprites", data_dir: str | None = None,
                      metrics: Any = None, fast: bool = False, seed: int = 0,
                      device: str | None = None, arch: str = "H", z_dim: int = 10,
                      params: dict[str, dict[str, Any]] | None = None,
                      progress: Progress | None = None, exact: bool = False,
                      image_size: int = 64) -> dict[str, Any]:
    """Score a baseline representation (:mod:`.baselines`) on ``dataset`` at ``image_size``."""
    key = canonical(name)
    require_factors(dataset, f"baseline '{key}'")
    names = parse_metrics(metrics)
    resolve_params(names, fast, params, exact)

    dev = resolve_device(device or "auto")
    _configure(dev)
    ds = open_dataset(dataset, data_dir, image_size=image_size)
    start = time.perf_counter()
    maker, info = baseline_table_maker(key, ds, dev, seed=seed, arch=arch, z_dim=z_dim,
                                       progress=progress)
    result = score(ds, maker, names, fast, seed, params, progress, exact)
    result.update({"baseline": key, "device": dev, **info,
                   "seconds": round(time.perf_counter() - start, 3)})
    return result

