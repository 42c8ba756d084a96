"""The Explore screen's latents: one line each, in KL order, with the current value as a bar.

Each line: the cursor, the latent's name, ● when it is active (KL above the threshold), its
value as a bar on [-limit, +limit] and as a number, and the factor it carries most where the run
has been evaluated ("posX .61"). Plain numbers in, a rich Text out: no markup is parsed, so a
factor name from eval.json is drawn as it is (through :func:`~bvae_tui.safe_text.plain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

from bvae_tui.safe_text import plain

FIXED_WIDTH = 26  # cursor, name, mark, number and factor: what the bar leaves
MIN_BAR = 7


def value_bar(value: float, limit: float, width: int) -> Text:
    """``value`` on [-limit, limit] as a bar ``width`` cells wide: filled from the centre
    (zero) to the value, the value's cell brightest; beyond the limit the end cell shows it."""
    width = max(3, width)
    centre = width // 2
    clipped = min(max(value, -limit), limit)
    pos = int(round((clipped + limit) / (2 * limit) * (width - 1))) if limit > 0 else centre
    text = Text()
    lo, hi = sorted((centre, pos))
    for i in range(width):
        if i == pos:
            text.append("┃" if abs(value) <= limit else ("◀" if value < 0 else "▶"),
                        style="bold yellow")
        elif lo <= i <= hi:
            text.append("━", style="yellow")
        elif i == centre:
            text.append("┼", style="dim")
        else:
            text.append("─", style="dim")
    return text


class LatentList(Widget):
    """The latents, the selected one under a cursor; set everything with :meth:`set_state`."""

    DEFAULT_CSS = """
    LatentList { height: auto; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.order: list[int] = []
        self.infos: list[Any] = []  # engine LatentInfo per latent (kl, active, factor, share)
        self.code: np.ndarray | None = None
        self.selected = 0
        self.limit = 3.0

    def set_state(self, order: Sequence[int], infos: Sequence[Any], code: np.ndarray | None,
                  selected: int, limit: float) -> None:
        self.order, self.infos = list(order), list(infos)
        self.code = None if code is None else np.asarray(code, np.float32)
        self.selected, self.limit = selected, limit
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(1, len(self.order))

    def line(self, latent: int, width: int) -> Text:
        info = self.infos[latent] if latent < len(self.infos) else None
        value = float(self.code[latent]) if self.code is not None else 0.0
        chosen = latent == self.selected
        text = Text("▸ " if chosen else "  ", style="bold" if chosen else "")
        text.append(f"z{latent:<2}", style="bold reverse" if chosen else "bold")
        text.append(" ● " if info is not None and info.active else "   ",
                    style="green" if info is not None and info.active else "")
        text.append_text(value_bar(value, self.limit, max(MIN_BAR, width - FIXED_WIDTH)))
        text.append(f" {value:+5.2f}")
        if info is not None and info.factor:
            share = f"{info.share:.2f}"[1:] if info.share is not None and info.share < 1 \
                else "1.0"
            text.append(f" ≈{plain(info.factor)[:7]} {share}", style="cyan")
        return text

    def render(self) -> Text:
        if not self.order:
            return Text("loading the model…", style="dim")
        width = self.size.width or 40
        out = Text("\n").join(self.line(k, width) for k in self.order)
        out.no_wrap, out.overflow = True, "ellipsis"
        return out
