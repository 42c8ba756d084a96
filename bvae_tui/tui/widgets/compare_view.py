"""Widgets of the compare screen: the legend of the curves and the per-latent KL of each run."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from bvae_tui.engine.analysis.compare import Group, colour
from bvae_tui.engine.analysis.compare_runs import ACTIVE_KL, CompareRun
from bvae_tui.safe_text import plain
from bvae_tui.tui.naming import differing_first
from bvae_tui.tui.widgets.kl_bars import nice_ceiling

_LEVELS = " ▁▂▃▄▅▆▇█"


def _cut(text: str, width: int) -> str:
    """``text`` as one printable line (labels name config values and run names, read from
    files), cut to ``width`` with an ellipsis."""
    text = plain(text)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class Legend(Widget):
    """One line per group: its colour, label and how many runs it holds."""

    DEFAULT_CSS = """
    Legend { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.groups: list[Group] = []
        self.title = ""

    def set_groups(self, groups: Sequence[Group], title: str) -> None:
        resized = len(groups) != len(self.groups)
        self.groups, self.title = list(groups), title
        self.refresh(layout=resized)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 1 + max(1, len(self.groups))

    def render(self) -> Text:
        width = max(4, self.size.width)
        out = Text(no_wrap=True, overflow="crop")
        out.append(_cut(self.title, width), style="bold")
        # What differs between the groups first: a narrow legend still tells them apart.
        labels = differing_first([group.label for group in self.groups])
        for group, label in zip(self.groups, labels, strict=True):
            n = len(group.runs)
            tail = f" ×{n}" if n > 1 else ""
            out.append("\n")
            out.append("━━ ", style=colour(group.colour))
            out.append(_cut(label, width - 3 - len(tail)))
            out.append(tail, style="dim")
        return out


class LatentGrid(Widget):
    """Each run's last KL per latent, sorted largest first, side by side on one scale.

    One line per run: its label, a cell per latent (a bar eighth by eighth, with the value when
    there is room) and the number of active latents; how many latents each setting keeps alive
    shows at a glance."""

    DEFAULT_CSS = """
    LatentGrid { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: list[tuple[str, int, CompareRun]] = []  # (label, colour, run)

    def set_runs(self, rows: Sequence[tuple[str, int, CompareRun]]) -> None:
        resized = len(rows) != len(self.rows)
        self.rows = list(rows)
        self.refresh(layout=resized)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 2 + max(1, len(self.rows))

    def render(self) -> Text:
        width = max(20, self.size.width)
        latents = [run.latents() for _, _, run in self.rows]
        most = max((len(k) for k in latents), default=0)
        top = max((v for k in latents for v in k), default=0.0)
        scale = nice_ceiling(top)
        label_w = min(18, max((len(plain(label)) for label, _, _ in self.rows), default=4) + 1)
        tail_w = 10  # " 10 active"
        cell = max(1, min(6, (width - label_w - tail_w) // max(1, most)))
        out = Text(no_wrap=True, overflow="crop")
        out.append("KL per latent, largest first", style="bold")
        out.append(f"  0–{scale:g} nats on one scale · active: KL > {ACTIVE_KL:g}", style="dim")
        if not self.rows:
            out.append("\n waiting for metrics…", style="dim italic")
            return out
        for (label, group_colour, run), kl in zip(self.rows, latents, strict=True):
            out.append("\n")
            out.append(_cut(label, label_w - 1).ljust(label_w), style=colour(group_colour))
            for i in range(most):
                if i >= len(kl):
                    out.append(" " * cell)
                    continue
                value = kl[i]
                level = _LEVELS[min(8, max(1 if value > ACTIVE_KL else 0,
                                           round(8 * value / scale)))]
                style = colour(group_colour) if value > ACTIVE_KL else "grey42"
                text = level if cell < 5 else f"{level}{value:>{cell - 2}.1f} "
                out.append(text[:cell].ljust(cell), style=style)
            alive = run.active()
            out.append(f" {alive if alive is not None else '-':>2} active", style="dim")
        out.append("\n")
        out.append(" " * label_w + "latents ranked by KL (each run sorted on its own)",
                   style="dim")
        return out
