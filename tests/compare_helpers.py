"""Run directories for the comparison tests (not a test module): real run directories written
through the run store, with metrics rows and eval.json the test chooses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bvae_tui.engine.config import make_config
from bvae_tui.engine.runs.records import EvalResult, MetricsRow
from bvae_tui.engine.runs.store import Run, create_run


def row(iteration: int, loss: float, kl: float, kl_per_latent: list[float] | None = None,
        c: float | None = None) -> MetricsRow:
    latents = kl_per_latent if kl_per_latent is not None else [kl / 2, kl / 2, 0.01, 0.0]
    return MetricsRow(iter=iteration, time=1_700_000_000.0 + iteration, elapsed=iteration / 10,
                      loss=loss, recon=loss - kl, kl=kl, kl_per_latent=latents,
                      mu_mean=[0.0] * len(latents), var_mean=[1.0] * len(latents), c=c,
                      img_per_s=100.0)


def make_run(root: Path, name: str, *, rows: list[MetricsRow] | None = None,
             scores: dict[str, float] | None = None, state: str = "finished",
             **config: Any) -> Run:
    """A run named ``name`` with ``rows`` (default: three rows) and, given ``scores``, an
    eval.json holding them."""
    cfg = make_config(None, **{"dataset": "dsprites-mini", "iterations": 300, "z_dim": 4,
                               "device": "cpu", **config})
    run = create_run(root, cfg, root, name=name)
    run.write_status(state=state, iteration=300, total=300, started=time.time() - 60)
    if rows is None:
        rows = [row(i * 100, 500.0 - i * 50, 10.0 + i) for i in (1, 2, 3)]
    with open(run.metrics_path, "w") as fh:
        fh.writelines(r.to_line() for r in rows)
    if scores is not None:
        run.write_eval(EvalResult(scores=scores, run=run.id, iteration=300, fast=True,
                                  created=time.time()))
    return run


def beta_seed_grid(root: Path, scores: dict[tuple[float, int], dict[str, float] | None]
                   ) -> dict[tuple[float, int], Run]:
    """One run per (beta, seed) key; its final KL is 20 / beta + seed, so groups differ."""
    out = {}
    for (beta, seed), run_scores in scores.items():
        kl = 20.0 / beta + seed
        rows = [row(i * 100, 400.0 - 10 * i + beta, kl * i / 3) for i in (1, 2, 3)]
        out[(beta, seed)] = make_run(root, f"b{beta:g}-s{seed}", rows=rows, scores=run_scores,
                                     beta=beta, seed=seed)
    return out


def one_line_error(result, *needles: str) -> None:
    """A CLI result that failed with exit code 1 and one `error:` line holding ``needles``."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
