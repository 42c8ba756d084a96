"""Per-latent KL as horizontal bars on an absolute scale, with posterior mean and variance.

The scale is a round number of nats that only grows while the widget lives, so a bar that gets
longer means that latent really carries more information, not that another one shrank (what a
sparkline normalised to its own maximum would suggest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from bvae_tui.engine.analysis.compare_runs import ACTIVE_KL

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_NICE = (1, 2, 5)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (and >= 0.5)."""
    value = max(value, 0.5)
    exp = math.floor(math.log10(value))
    for base in (*_NICE, 10):
        candidate = base * 10**exp
        if candidate >= value - 1e-12:
            return float(candidate)
    return float(10 ** (exp + 1))


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar of ``width`` cells filled to ``fraction`` with 1/8-cell resolution."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text.ljust(width)


def _num(values: Sequence | None, i: int) -> float | None:
    try:
        v = float(values[i])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    return v if math.isfinite(v) else None


class KLBars(Widget):
    """One line per latent: active marker, KL bar, KL, posterior mean and variance."""

    DEFAULT_CSS = """
    KLBars { height: auto; min-height: 2; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.kl: list[float] = []
        self.mu: list[float] | None = None
        self.var: list[float] | None = None
        self.scale = 1.0

    def set_latents(self, kl: Sequence[float] | None, mu: Sequence[float] | None,
                    var: Sequence[float] | None) -> None:
        # Rows come from a file another process wrote: take lists of numbers, nothing else.
        kl = kl if isinstance(kl, (list, tuple)) else []
        values = [float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
                  for v in kl]
        resized = len(values) != len(self.kl)
        self.kl = values
        self.mu = list(mu) if isinstance(mu, (list, tuple)) and mu else None
        self.var = list(var) if isinstance(var, (list, tuple)) and var else None
        if values:
            self.scale = max(self.scale, nice_ceiling(max(values)))
        if resized:
            self.refresh(layout=True)
        else:
            self.refresh()

    @property
    def active(self) -> list[int]:
        return [i for i, v in enumerate(self.kl) if v > ACTIVE_KL]

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 1 + max(1, len(self.kl))

    def render(self) -> Text:
        width = self.size.width
        n_active = len(self.active)
        out = Text(no_wrap=True, overflow="crop")
        out.append("KL/latent", style="bold")
        out.append(f" 0–{self.scale:g} nats  ", style="dim")
        out.append("●", style="bold green")
        out.append(f" {n_active} active (>{ACTIVE_KL:g})", style="dim")
        if not self.kl:
            out.append("\n waiting for metrics…", style="dim italic")
            return out
        digits = len(str(len(self.kl) - 1))
        show_mu = self.mu is not None and width >= 34
        fixed = 2 + digits + 2 + 6 + (16 if show_mu else 0)
        bar_w = max(3, width - fixed)
        for i, kl in enumerate(self.kl):
            active = kl > ACTIVE_KL
            out.append("\n")
            out.append(f"z{i:<{digits}} ", style="bold" if active else "dim")
            out.append("●" if active else "·", style="bold green" if active else "dim")
            out.append(bar(kl / self.scale, bar_w), style="green" if active else "grey50")
            out.append(f"{kl:6.2f}", style="" if active else "dim")
            if show_mu:
                mu, var = _num(self.mu, i), _num(self.var, i)
                out.append(" μ" + (f"{mu:+.2f}" if mu is not None else "  -  "), style="cyan")
                out.append(" σ²" + (f"{var:.2f}" if var is not None else " -  "),
                           style="magenta")
        return out
