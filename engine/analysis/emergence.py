"""When each factor emerged in a latent: the first probe at which one latent carried more than
half of the factor (its MI over the factor's entropy above :data:`THRESHOLD`).

Burgess et al. 2018 claim that as the capacity C grows the factors are encoded one by one; read
from a run's probes.jsonl, this is the order they came in. Plain Python over
:class:`~bvae_tui.engine.runs.records.ProbeRow`: no torch, no NumPy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.records import ProbeRow

THRESHOLD = 0.5  # "a latent carried more than half of it"


@dataclass(frozen=True)
class Emergence:
    """One factor: the first probe where a latent carried more than the threshold of it (None
    for ``iteration`` and ``latent`` when none has yet), and that share."""

    factor: str
    iteration: int | None
    latent: int | None
    share: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shares(row: ProbeRow, width: int) -> list[list[float]] | None:
    """The row's latents x factors shares, or None when the row is damaged (a hand-edited or
    foreign line: wrong width, non-finite values)."""
    mi = row.mi or []
    if not mi or any(len(r) != width for r in mi):
        return None
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for r in mi for v in r):
        return None
    return mi


def emergence(rows: list[ProbeRow], threshold: float = THRESHOLD) -> list[Emergence]:
    """Per factor (in the probes' order), the first iteration a latent carried more than
    ``threshold`` of it. Rows are taken in iteration order; damaged rows are skipped."""
    rows = sorted((r for r in rows if r.iter is not None and r.factors), key=lambda r: r.iter)
    if not rows:
        return []
    factors = list(rows[-1].factors or [])
    found: dict[int, Emergence] = {}
    for row in rows:
        shares = _shares(row, len(factors)) if row.factors == factors else None
        if shares is None:
            continue
        for k in range(len(factors)):
            if k in found:
                continue
            latent = max(range(len(shares)), key=lambda j: shares[j][k])
            if shares[latent][k] > threshold:
                found[k] = Emergence(factors[k], row.iter, latent, float(shares[latent][k]))
    return [found.get(k, Emergence(name, None, None, None)) for k, name in enumerate(factors)]


def run_emergence(run: Any, threshold: float = THRESHOLD) -> list[Emergence]:
    """``emergence`` of a run's probes, or a one-line :class:`RunError` saying how to get them."""
    result = emergence(run.probes(), threshold)
    if not result:
        raise RunError(f"run {run.id} has no probes (probes.jsonl) yet; they come every "
                       "--probe-every iterations of training on a dataset with ground-truth "
                       "factors (dsprites, dsprites-mini, shapes3d): train one, e.g. 'bvae "
                       "train --dataset dsprites --probe-every 2000', or wait for its first "
                       "probe")
    return result
