"""The latent x factor information matrix of a run's evaluation as a heat map.

One row per latent (z0, z1, ... under a header naming the factors), one column per factor; each
cell is the share of the factor's entropy the latent carries (MI / H, in [0, 1]) as a colour
from dark to bright with its two digits, so the latent that carries a factor stands out in its
column. The monitor shows it under the KL bars, whose rows are the same latents. Read from
the run's probes while it trains (probes.jsonl, every ``--probe-every`` steps, under a caption
naming the probe's iteration), else from eval.json (``bvae eval`` or ``--eval-at-end``).
"""

from __future__ import annotations

import textwrap

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from bvae_tui.engine.analysis.mi_matrix import MIMatrix, ramp_rgb, share_text
from bvae_tui.engine.runs.records import ProbeRow
from bvae_tui.safe_text import plain

CELL = 5  # characters per factor column
LABEL = 5  # the latent label column ("z12 ")
CAPTION_WIDTH = 38  # the monitor's side column less padding: a longer caption wraps


def cell_text(value: float) -> str:
    """A share centred in a cell: ' .82 ', ' 1.0 ', '  ·  '."""
    return share_text(value).center(CELL)


def short_names(factors: list[str]) -> list[str]:
    """Column headers of at most CELL - 1 characters, unique (else f0, f1, ...). The names are
    eval.json's: plain() keeps control characters out of the terminal."""
    names = [plain(name)[:CELL - 1] for name in factors]
    return names if len(set(names)) == len(names) else [f"f{k}" for k in range(len(factors))]


def probe_matrix(row: ProbeRow) -> MIMatrix | None:
    """A probe row's matrix (it holds shares: MI / H) in nats, as an evaluation's; None for a
    damaged row, which :meth:`MIMatrix.from_result` refuses."""
    entropy = row.factor_entropy or []
    shares = row.mi or []
    if not entropy or any(len(r) != len(entropy) for r in shares):
        return None
    nats = [[v * h for v, h in zip(r, entropy, strict=True)] for r in shares]
    return MIMatrix.from_result({"mi": nats, "factor_entropy": entropy,
                                 "factors": row.factors})


class MIHeatmap(Widget):
    """Heat map of MI(latent; factor) / H(factor) from the run's eval.json."""

    DEFAULT_CSS = """
    MIHeatmap { height: auto; width: auto; padding: 0 0 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.matrix: MIMatrix | None = None
        self.caption = ""  # which matrix: a probe's iteration and place (none for eval's)
        self.display = False  # until a probe or an evaluation brings a matrix

    def set_matrix(self, matrix: MIMatrix | None, caption: str = "") -> None:
        self.matrix = matrix
        self.caption = plain(caption) if matrix is not None else ""
        self.display = matrix is not None
        self.refresh(layout=True)

    @property
    def caption_lines(self) -> list[str]:
        """The caption, wrapped at word boundaries to the side column's width."""
        return textwrap.wrap(self.caption, CAPTION_WIDTH) if self.caption else []

    def get_content_width(self, container, viewport) -> int:  # noqa: ANN001
        factors = len(self.matrix.factors) if self.matrix else 0
        return max(LABEL + CELL * factors, *(len(line) for line in self.caption_lines), 0)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 1 + (self.matrix.latents if self.matrix else 1) + len(self.caption_lines)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        if self.matrix is None:
            out.append("no information matrix: bvae eval RUN", style="dim italic")
            return out
        for line in self.caption_lines:
            out.append(line + "\n", style="dim")
        out.append("MI/H".ljust(LABEL), style="bold")
        for name in short_names(self.matrix.factors):
            out.append(name.center(CELL), style="bold")
        for i, row in enumerate(self.matrix.shares()):
            out.append("\n")
            best = max(row) if row else 0.0
            out.append(f"z{i}".ljust(LABEL), style="bold" if best >= 0.1 else "dim")
            for value in row:
                fg = "black" if value > 0.6 else "white"
                out.append(cell_text(value), style=Style(color=fg,
                                                         bgcolor=Color.from_rgb(*ramp_rgb(value))))
        return out
