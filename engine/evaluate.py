"""Scoring a run (or a baseline) with the disentanglement metrics, and recording the result.

``evaluate_run`` loads a run's checkpoint, encodes every image the metrics need once (batched, no
autograd, on the run's device) into a table of encoder means, scores the metrics from that table
(:mod:`engine.metrics`) and writes ``eval.json`` in the run directory atomically::

    {"scores": {"betavae": .., "factorvae": .., "mig": ..}, "details": {...}, "params": {...},
     "seed": 0, "fast": false, "iteration": 12000, "checkpoint": "checkpoints/last.pt",
     "dataset": "dsprites", "device": "cpu", "encoded": 737280, "seconds": 171.2,
     "timings": {...}, "created": 1764070000.0}

Baselines (ground truth, raw pixels, PCA, an untrained network) go through the same code:
:mod:`engine.baselines`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import DataError, RunError
from engine.metrics import (
    METRICS,
    CodeTable,
    Table,
    evaluate_representation,
    parse_metrics,
    resolve_params,
)

if TYPE_CHECKING:
    import torch

    from engine.runs import Run

Progress = Callable[[str, int, int | None], None]

# Higgins et al. 2017, BetaVAE metric on dSprites (REFERENCE.md), for side-by-side tables.
PAPER_BETAVAE = {
    "ground truth": 1.0, "raw pixels": 0.4575, "PCA": 0.849, "ICA": 0.4203, "DC-IGN": 0.993,
    "InfoGAN": 0.735, "untrained VAE": 0.4414, "VAE": 0.6158, "beta-VAE": 0.9923,
}

# Images per encoder call on the CPU (256 measured faster than 1024: activations stay in cache);
# GPUs get 8x that.
ENCODE_BATCH = 256


def encode_table(model: torch.nn.Module, dataset: Any, indices: np.ndarray, device: str,
                 batch_size: int | None = None, progress: Progress | None = None,
                 device_images: bool | None = None) -> CodeTable:
    """Encoder means of ``dataset[indices]`` (sorted, unique) as a :class:`CodeTable`.

    Sorted indices read the memory-mapped images mostly in order. On a GPU (``device_images``
    defaults to it) the packed images are uploaded once and unpacked there (``DeviceImages``);
    on the CPU each batch is unpacked by the dataset.
    """
    import torch

    indices = np.asarray(indices, dtype=np.int64)
    codes = np.empty((len(indices), int(model.z_dim)), dtype=np.float32)
    on_gpu = str(device).startswith("cuda")
    batch_size = batch_size or (8 * ENCODE_BATCH if on_gpu else ENCODE_BATCH)
    # Channels-last convolutions: ~1.5x the images/s of the default layout on this project's
    # 2-core CPU (benchmarks/bench_eval.py). Converts the model in place: a layout change only.
    model.to(memory_format=torch.channels_last)
    source = None
    if on_gpu if device_images is None else device_images:
        from datasets.tensors import DeviceImages

        source = DeviceImages(dataset, device)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            if source is not None:
                x = source.batch(torch.from_numpy(chunk).to(device))
            else:
                x = torch.from_numpy(np.ascontiguousarray(dataset.float_images_at(chunk)))
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            mu, _ = model.encode(x)
            codes[start:start + len(chunk)] = mu.float().cpu().numpy()
            if progress:
                progress("encoding images", start + len(chunk), len(indices))
    return CodeTable(codes, indices, n=int(dataset.n))


def model_table_maker(model: torch.nn.Module, dataset: Any, device: str,
                      progress: Progress | None = None) -> Callable[[np.ndarray], Table]:
    return lambda needed: encode_table(model, dataset, needed, device, progress=progress)


def require_factors(dataset_name: str, what: str) -> None:
    """A one-line :class:`DataError` when ``dataset_name`` has no ground-truth factors."""
    from datasets.registry import get_spec

    spec = get_spec(dataset_name)
    if not spec.has_factors:
        raise DataError(f"{what} uses dataset '{dataset_name}', which has no ground-truth "
                        "factors; disentanglement metrics need one that has them "
                        "(dsprites or dsprites-mini)")


def _run_device(run: Run, device: str | None) -> str:
    """``device`` if given, else the device the run trained on, else its configured one."""
    from engine.devices import resolve_device
    from engine.errors import DeviceError

    if device is not None:
        return resolve_device(str(device))
    trained_on = run.raw_status().get("device") or run.config.device
    try:
        return resolve_device(str(trained_on))
    except DeviceError:  # that GPU is gone (run copied to another machine): any will do
        return resolve_device("auto")


def _configure(device: str) -> None:
    """The training fast paths' process set-up (allocator, threads): encoding benefits too."""
    from engine import fastpath

    fastpath.configure_process(device)


def score(dataset: Any, make_table: Callable[[np.ndarray], Table], metrics: Any = None,
          fast: bool = False, seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
          progress: Progress | None = None) -> dict[str, Any]:
    """Metrics on one representation: the shared core of runs and baselines (no file written)."""
    names = parse_metrics(metrics)
    chosen = resolve_params(names, fast, params)
    start = time.perf_counter()
    result = evaluate_representation(dataset, make_table, names, chosen, seed, progress)
    return {
        "scores": result["scores"],
        "details": result["details"],
        "params": chosen,
        "seed": int(seed),
        "fast": bool(fast),
        "dataset": getattr(dataset, "name", None),
        "factors": result["factors"],
        "encoded": result["encoded"],
        "timings": {k: round(v, 3) for k, v in result["timings"].items()},
        "seconds": round(time.perf_counter() - start, 3),
        "created": time.time(),
    }


def evaluate_run(run: Run, metrics: Any = None, fast: bool = False, seed: int = 0,
                 device: str | None = None, checkpoint: str | Path | None = None,
                 params: dict[str, dict[str, Any]] | None = None,
                 progress: Progress | None = None, write: bool = True) -> dict[str, Any]:
    """Score ``run``'s checkpoint (default ``last.pt``) and write ``eval.json`` in the run.

    ``metrics``: names or "betavae,mig" (default all); ``fast``: smaller sample counts (recorded);
    ``params``: per-metric overrides of the sample counts (tests use tiny ones).
    """
    from datasets.loader import open_dataset
    from engine.checkpoint import checkpoint_path, load_model

    start = time.perf_counter()
    names = parse_metrics(metrics)  # validate before the slow parts
    resolve_params(names, fast, params)
    cfg = run.config
    require_factors(cfg.dataset, f"run {run.id}")
    dev = _run_device(run, device)
    _configure(dev)
    ckpt = checkpoint_path(run, checkpoint)
    model, cfg, iteration = load_model(run, ckpt, dev)
    dataset = open_dataset(cfg.dataset, run.data_dir)
    if int(dataset.channels) != int(model.channels):
        raise RunError(f"run {run.id}: model has {model.channels} channel(s) but dataset "
                       f"'{cfg.dataset}' has {dataset.channels}")
    result = score(dataset, model_table_maker(model, dataset, dev, progress), names, fast, seed,
                   params, progress)
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
        from engine.runs import write_json_atomic

        write_json_atomic(run.eval_path, _merged(run.eval_results(), result))
    return result


def _merged(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``, keeping scores of other metrics from ``old`` when they describe the same thing.

    ``bvae eval RUN --metrics mig`` after a full evaluation of the same checkpoint (same seed and
    sample counts) keeps the BetaVAE and FactorVAE scores; anything else replaces the file.
    """
    same = old is not None and all(old.get(k) == new.get(k) for k in
                                   ("iteration", "checkpoint", "seed", "fast", "dataset"))
    if not same or not isinstance(old.get("scores"), dict):
        return new
    out = dict(new)
    for key in ("scores", "details", "params", "timings"):
        kept = {m: v for m, v in (old.get(key) or {}).items()
                if m in METRICS and m not in new["scores"]}
        out[key] = {**kept, **new.get(key, {})}
    return out


def evaluate_baseline(name: str, dataset: str = "dsprites", data_dir: str | None = None,
                      metrics: Any = None, fast: bool = False, seed: int = 0,
                      device: str | None = None, arch: str = "H", z_dim: int = 10,
                      params: dict[str, dict[str, Any]] | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Score a baseline representation (see :mod:`engine.baselines`) on ``dataset``."""
    from datasets.loader import open_dataset
    from engine.baselines import baseline_table_maker, canonical

    key = canonical(name)
    require_factors(dataset, f"baseline '{key}'")
    names = parse_metrics(metrics)
    resolve_params(names, fast, params)
    from engine.devices import resolve_device

    dev = resolve_device(device or "auto")
    _configure(dev)
    ds = open_dataset(dataset, data_dir)
    start = time.perf_counter()
    maker, info = baseline_table_maker(key, ds, dev, seed=seed, arch=arch, z_dim=z_dim,
                                       progress=progress)
    result = score(ds, maker, names, fast, seed, params, progress)
    result.update({"baseline": key, "device": dev, **info,
                   "seconds": round(time.perf_counter() - start, 3)})
    return result


__all__ = ["METRICS", "PAPER_BETAVAE", "encode_table", "evaluate_run", "evaluate_baseline",
           "score"]
