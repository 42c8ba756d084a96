"""Objective B's capacity schedule read from a run's config, for the faces' time axes.

Burgess et al. raise the target KL C linearly from 0 to ``c_max`` over ``c_stop_iter`` steps
and hold it there; they claim the factors enter the latents one by one as C grows. The monitor
marks the iterations where C passes whole values on its curves' shared iteration axis and names
the C of each probe, so a user sees which value of C a factor moved into a latent at. The
training itself uses :func:`bvae_tui.engine.train.objectives.h_b.capacity`; this module is the
same formula without torch (a test checks they agree), working on a config.json dict that may
be old or hand-edited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bvae_tui.engine.config import field_info

STEPS = (1, 2, 5)  # whole values of C are marked every 1, 2, 5, 10, 20, 50, ... nats


@dataclass(frozen=True)
class Schedule:
    """C rises linearly to ``c_max`` nats at step ``c_stop_iter``, then stays."""

    c_max: float
    c_stop_iter: float

    def at(self, iteration: float) -> float:
        """C at a (1-based) training step."""
        return min(self.c_max, self.c_max * iteration / self.c_stop_iter)

    def iteration_of(self, c: float) -> float:
        """The step at which C reaches ``c`` (at most ``c_max``)."""
        return c * self.c_stop_iter / self.c_max


def schedule(config: dict[str, Any]) -> Schedule | None:
    """The run's C schedule: objective B only; None for other objectives or a config whose
    c_max / c_stop_iter are not numbers in range (a damaged file is not a schedule)."""
    if config.get("objective") != "B":
        return None
    values = []
    for name in ("c_max", "c_stop_iter"):
        value = config.get(name, field_info(name).default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or value < 0 or (value == 0 and name == "c_stop_iter"):
            return None
        values.append(float(value))
    return Schedule(*values)


def marks(plan: Schedule, lo: float, hi: float, slots: int) -> list[tuple[float, float]]:
    """(iteration, C) where C passes a whole value between steps ``lo`` and ``hi``, every 1,
    2, 5, 10, ... nats: the finest spacing that gives at most ``slots`` marks (none when even
    one does not fit)."""
    if slots < 1 or hi <= lo or plan.c_max <= 0:
        return []
    c_lo, c_hi = plan.at(max(lo, 0.0)), plan.at(hi)
    step = 1.0
    for scale in (10.0 ** k for k in range(0, 7)):
        for base in STEPS:
            step = base * scale
            first = math.floor(c_lo / step) + 1
            last = math.floor(c_hi / step + 1e-9)
            if last - first + 1 <= slots:
                return [(plan.iteration_of(k * step), k * step) for k in range(first, last + 1)
                        if lo <= plan.iteration_of(k * step) <= hi]
    return []
