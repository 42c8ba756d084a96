"""UDR over a group of runs: check the group, encode the same images with every run, score, and
record each run's UDR in its eval.json.

A group is two or more runs trained with the same settings and different seeds: the same value
of every field of the data, objective, model and optimisation groups of the training schema
(fields the objective does not use are ignored), run and speed options may differ. UDR needs no
ground-truth factors, so it works on CelebA. The images are a seeded random choice of the
dataset's, the same for every run; each run is encoded on its own device. A sweep's groups are
its members with the same swept values but the seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.engine.analysis.encode import Progress, encode_posterior
from bvae_tui.engine.analysis.evaluate import merged, run_device
from bvae_tui.engine.analysis.metrics.udr import CORRELATIONS, DEFAULTS, udr_scores
from bvae_tui.engine.config import GROUP_RUN, GROUP_SPEED, TrainConfig, schema
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.records import EvalResult
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.grid import label
from bvae_tui.engine.train.checkpoint import checkpoint_path, load_model
from bvae_tui.engine.train.process import configure_process

_IGNORED_GROUPS = (GROUP_RUN, GROUP_SPEED)


def _setting(cfg: TrainConfig, name: str) -> Any:
    return cfg.architecture if name == "arch" else getattr(cfg, name)


def differences(a: TrainConfig, b: TrainConfig) -> list[tuple[str, Any, Any]]:
    """``(field, a's value, b's value)`` of every training setting the two differ in, seed
    aside (run and speed options do not count)."""
    values = a.to_dict()
    out = []
    for info in schema():
        if info.group in _IGNORED_GROUPS or info.name == "seed" or not info.applies(values):
            continue
        va, vb = _setting(a, info.name), _setting(b, info.name)
        if va != vb:
            out.append((info.option[2:], va, vb))
    return out


def check_group(runs: Sequence[Run]) -> list[Run]:
    """The runs, each once, if they form a UDR group; else a one-line :class:`ConfigError`."""
    unique = list({run.path.resolve(): run for run in runs}.values())
    if len(unique) < 2:
        raise ConfigError(f"UDR compares a group of at least 2 runs that differ only in their "
                          f"seed; got {len(unique)} (e.g. bvae eval --udr RUN_SEED1 RUN_SEED2)")
    first = unique[0]
    seeds: dict[int, str] = {}
    for run in unique:
        diff = differences(first.config, run.config)
        if diff:
            shown = ", ".join(f"{name} ({va} vs {vb})" for name, va, vb in diff[:3])
            raise ConfigError(f"runs {first.id} and {run.id} differ in {shown}, not only in "
                              "their seed; UDR compares runs trained with the same settings")
        seed = run.config.seed
        if seed in seeds:
            raise ConfigError(f"runs {seeds[seed]} and {run.id} have the same seed {seed}; UDR "
                              "compares runs with different seeds")
        seeds[seed] = run.id
    return unique


def sweep_groups(sweep: Any) -> tuple[list[tuple[str, list[Run]]], list[str]]:
    """A sweep's UDR groups: its members with a checkpoint, grouped by their swept values other
    than the seed (``beta=4``), each of at least 2 runs; and a note per member or group left
    out. A one-line :class:`ConfigError` when no group is left."""
    groups: dict[str, list[Run]] = {}
    notes = []
    for run, swept in zip(sweep.members(), sweep.member_values(), strict=False):
        key = label({k: v for k, v in swept.items() if k != "seed"}) or "all"
        if not run.last_checkpoint.exists():
            notes.append(f"{run.id} ({label(swept)}): no checkpoint yet")
            continue
        groups.setdefault(key, []).append(run)
    kept = [(key, runs) for key, runs in groups.items() if len(runs) >= 2]
    notes += [f"{key}: only 1 run with a checkpoint" for key, runs in groups.items()
              if len(runs) < 2]
    if not kept:
        swept_seed = "seed" in sweep.record().axes
        raise ConfigError(
            f"sweep {sweep.id} has no group of 2+ runs that differ only in their seed "
            + ("with a checkpoint yet; wait for its members to train" if swept_seed else
               "(it does not sweep seed); sweep seeds too, e.g. bvae sweep ... --seed 1,2,3"))
    return kept, notes


def evaluate_udr(runs: Sequence[Run], num_points: int = DEFAULTS["num_points"],
                 seed: int = 0, correlation: str = "lasso", device: str | None = None,
                 progress: Progress | None = None, write: bool = True) -> dict[str, Any]:
    """UDR of each run of the group; writes ``scores.udr`` into each run's eval.json.

    Returns ``{"runs": [{"run", "seed", "iteration", "udr", "active_latents", ...}],
    "pairwise", "params", "dataset", "seconds"}``.
    """
    start = time.perf_counter()
    if correlation not in CORRELATIONS:
        raise ConfigError(f"--correlation must be one of {', '.join(CORRELATIONS)}; "
                          f"got {correlation!r}")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 10:
        raise ConfigError(f"--udr-points must be a whole number of at least 10; got "
                          f"{num_points!r}")
    group = check_group(runs)
    cfg = group[0].config
    dataset = open_dataset(cfg.dataset, group[0].data_dir, image_size=cfg.image_size)
    rng = np.random.RandomState(seed)
    idx = np.sort(rng.choice(int(dataset.n), size=min(int(dataset.n), num_points),
                             replace=False))
    codes, kls, loaded = [], [], []
    for run in group:
        dev = run_device(run, device)
        configure_process(dev)
        ckpt = checkpoint_path(run)
        model, _, iteration = load_model(run, ckpt, dev)
        if int(model.channels) != int(dataset.channels):
            raise RunError(f"run {run.id}: model has {model.channels} channel(s) but dataset "
                           f"'{cfg.dataset}' has {dataset.channels}")
        mu, logvar = encode_posterior(model, dataset, idx, dev, progress=progress)
        codes.append(mu)
        kls.append(np.mean(0.5 * (np.square(mu) + np.exp(logvar) - logvar - 1.0), axis=0))
        loaded.append((run, dev, iteration, model))
    t0 = time.perf_counter()
    if progress:
        progress("comparing runs", 0, None)
    res = udr_scores(codes, kls, seed, correlation, DEFAULTS["kl_threshold"], DEFAULTS["alpha"])
    scored = time.perf_counter() - t0
    params = {"num_points": int(len(idx)), "correlation": correlation,
              "kl_threshold": DEFAULTS["kl_threshold"], "alpha": DEFAULTS["alpha"]}
    ids = [run.id for run in group]
    rows = []
    for i, (run, dev, iteration, model) in enumerate(loaded):
        pairs = {ids[j]: float(res["pairwise"][j, i]) for j in range(len(ids)) if j != i}
        row = {"run": run.id, "seed": run.config.seed, "iteration": int(iteration),
               "udr": res["scores"][i], "active_latents": res["active"][i],
               "kl_per_latent": [float(v) for v in kls[i]], "pairwise": pairs}
        rows.append(row)
        if write:
            _record(run, row, ids, params, seed, dataset, dev, model, scored)
    pairwise = [[None if i == j else float(v) for j, v in enumerate(line)]
                for i, line in enumerate(res["pairwise"])]
    return {"runs": rows, "pairwise": pairwise, "params": params, "seed": int(seed),
            "dataset": getattr(dataset, "name", cfg.dataset),
            "seconds": round(time.perf_counter() - start, 3)}


def _record(run: Run, row: dict[str, Any], group: list[str], params: dict[str, Any], seed: int,
            dataset: Any, device: str, model: Any, seconds: float) -> None:
    """Merge this run's UDR into its eval.json (other scores of the same checkpoint stay)."""
    detail = {"group": group, "pairwise": row["pairwise"],
              "active_latents": row["active_latents"]}
    old = run.eval_results()
    # UDR draws its own points: whether the factor metrics were --fast or --exact does not
    # concern it, so it joins them whichever they were.
    new = EvalResult.from_dict({
        "scores": {"udr": row["udr"]}, "details": {"udr": detail}, "params": {"udr": params},
        "timings": {"udr": round(seconds, 3)}, "seed": int(seed),
        "fast": bool(old and old.fast), "exact": bool(old and old.exact),
        "run": run.id, "iteration": row["iteration"], "checkpoint": "checkpoints/last.pt",
        "dataset": getattr(dataset, "name", None), "device": device,
        "arch": getattr(model, "arch", None), "z_dim": int(model.z_dim),
        "encoded": params["num_points"], "created": time.time()})
    run.write_eval(merged(old, new))
