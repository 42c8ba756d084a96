"""The latent x factor mutual-information matrix of an evaluation, as the faces show it.

eval.json keeps the MI in nats (``mi``, latents x factors) and each factor's entropy
(``factor_entropy``); shown, each cell is the share of the factor's entropy the latent carries,
``MI / H`` in [0, 1], so factors with 3 and 40 values read on one scale. Plain Python: the TUI
imports this on its UI thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Dark to bright (viridis stops), for the TUI's heat map and the PNG: brighter reads as more.
RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def ramp_rgb(value: float) -> tuple[int, int, int]:
    """The heat map's colour for a share in [0, 1]."""
    v = min(max(value, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(v), len(RAMP) - 2)
    t = v - i
    a, b = RAMP[i], RAMP[i + 1]
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


def share_text(value: float) -> str:
    """A share as at most three characters: '.82', '1.0', and '·' for next to nothing."""
    if value < 0.005:
        return "·"
    return "1.0" if value >= 0.995 else f"{value:.2f}"[1:]


@dataclass(frozen=True)
class MIMatrix:
    nats: list[list[float]]  # (latents, factors)
    entropy: list[float]  # (factors,)
    factors: list[str]

    @property
    def latents(self) -> int:
        return len(self.nats)

    def shares(self) -> list[list[float]]:
        """``MI / H`` per cell, clipped to [0, 1] (0 where a factor has no entropy)."""
        return [[min(1.0, max(0.0, v / h)) if h > 0 else 0.0
                 for v, h in zip(row, self.entropy, strict=True)] for row in self.nats]

    @classmethod
    def from_result(cls, result: Any) -> MIMatrix | None:
        """From an :class:`~bvae_tui.engine.runs.records.EvalResult` or its dict; None when the
        evaluation has no usable matrix (MIG and modularity not scored, or a damaged file)."""
        get = result.get if isinstance(result, dict) else lambda key: getattr(result, key, None)
        nats, entropy = get("mi"), get("factor_entropy")
        factors = list(get("factors") or [])
        if not nats or not entropy or len(entropy) != len(nats[0]):
            return None
        width = len(entropy)
        if any(len(row) != width for row in nats):
            return None
        values = [v for row in nats for v in row] + list(entropy)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return None
        if len(factors) != width:
            factors = [f"factor{k}" for k in range(width)]
        return cls([[float(v) for v in row] for row in nats], [float(h) for h in entropy],
                   factors)

    def main_factor(self, latent: int) -> int | None:
        """The factor this latent carries the largest share of (None if it carries none)."""
        row = self.shares()[latent]
        best = max(range(len(row)), key=row.__getitem__)
        return best if row[best] > 0 else None
