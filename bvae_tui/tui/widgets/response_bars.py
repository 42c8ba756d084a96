"""The inverse view: how each latent's encoder mean moves when one factor of the source image
steps to its next class, as signed bars (left: the mean fell, right: it rose).

It answers "which latents respond to x position?" from the encoder alone. The bars share one
scale, the largest change, written in the title, so a latent that does not respond reads as
an empty bar next to one that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

from bvae_tui.safe_text import plain

FIXED_WIDTH = 34  # name, mark, factor tag and number: what the bars leave


def signed_bar(value: float, scale: float, half: int) -> Text:
    """A bar ``2*half+1`` cells wide: ``value`` / ``scale`` of one half, left when negative."""
    n = min(half, int(round(abs(value) / scale * half))) if scale > 0 else 0
    text = Text()
    text.append(" " * (half - n) if value < 0 else " " * half)
    if value < 0:
        text.append("█" * n, style="magenta")
    text.append("│", style="dim")
    if value > 0:
        text.append("█" * n, style="green")
    text.append(" " * (half - n) if value > 0 else " " * half)
    return text


class ResponseBars(Widget):
    """Set with :meth:`set_response` (an engine Response, or None with a message)."""

    DEFAULT_CSS = """
    ResponseBars { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.response: Any = None
        self.title = ""
        self.order: list[int] = []
        self.infos: list[Any] = []
        self.message = "v: the inverse view (step a factor of the source image)"

    @property
    def values(self) -> list[float]:
        """The change shown for each latent, in the order shown (for tests)."""
        if self.response is None:
            return []
        return [float(self.response.delta[k]) for k in self.order]

    def set_response(self, response: Any, title: str, order: Sequence[int],
                     infos: Sequence[Any]) -> None:
        self.response, self.title = response, title
        self.order, self.infos = list(order), list(infos)
        self.refresh(layout=True)

    def set_message(self, message: str) -> None:
        self.response, self.message = None, message
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return 1 + len(self.order) if self.response is not None else 1

    def render(self) -> Text:
        if self.response is None:
            return Text(plain(self.message), style="dim")
        delta = np.asarray(self.response.delta, np.float64)
        scale = float(np.abs(delta).max()) if delta.size else 0.0
        width = self.size.width or 80
        half = max(4, (width - FIXED_WIDTH) // 2)
        lines = [Text(f"{plain(self.title)}  full bar {scale:.3g}", style="bold")]
        for k in self.order:
            info = self.infos[k] if k < len(self.infos) else None
            line = Text(f"z{k:<2}", style="bold")
            line.append(" ● " if info is not None and info.active else "   ", style="green")
            tag = f"≈{plain(info.factor)[:7]}" if info is not None and info.factor else ""
            line.append(f"{tag:<9}", style="cyan")
            line.append(f"{delta[k]:+8.3f} ")
            line.append_text(signed_bar(float(delta[k]), scale, half))
            lines.append(line)
        out = Text("\n").join(lines)
        out.no_wrap, out.overflow = True, "ellipsis"  # one line a latent: heights stay exact
        return out
