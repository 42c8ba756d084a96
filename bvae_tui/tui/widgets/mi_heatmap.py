"""The latent x factor information matrix of a run's evaluation as a heat map.

One row per latent (z0, z1, ... under a header naming the factors), one column per factor; each
cell is the share of the factor's entropy the latent carries (MI / H, in [0, 1]) as a colour
from dark to bright with its two digits, so the latent that carries a factor stands out in its
column. The monitor shows it under the KL bars, whose rows are the same latents. Read from
eval.json (``bvae eval`` or ``--eval-at-end``).
"""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from bvae_tui.engine.analysis.mi_matrix import MIMatrix, ramp_rgb, share_text
from bvae_tui.safe_text import plain

CELL = 5  # characters per factor column
LABEL = 5  # the latent label column ("z12 ")


def cell_text(value: float) -> str:
    """A share centred in a cell: ' .82 ', ' 1.0 ', '  ·  '."""
    return share_text(value).center(CELL)


def short_names(factors: list[str]) -> list[str]:
    """Column headers of at most CELL - 1 characters, unique (else f0, f1, ...). The names are
    eval.json's: plain() keeps control characters out of the terminal."""
    names = [plain(name)[:CELL - 1] for name in factors]
    return names if len(set(names)) == len(names) else [f"f{k}" for k in range(len(factors))]


class MIHeatmap(Widget):
    """Heat map of MI(latent; factor) / H(factor) from the run's eval.json."""

    DEFAULT_CSS = """
    MIHeatmap { height: auto; width: auto; padding: 0 0 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.matrix: MIMatrix | None = None
        self.display = False  # until an evaluation brings a matrix

    def set_matrix(self, matrix: MIMatrix | None) -> None:
        self.matrix = matrix
        self.display = matrix is not None
        self.refresh(layout=True)

    def get_content_width(self, container, viewport) -> int:  # noqa: ANN001
        factors = len(self.matrix.factors) if self.matrix else 0
        return LABEL + CELL * factors

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 1 + (self.matrix.latents if self.matrix else 1)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        if self.matrix is None:
            out.append("no information matrix: bvae eval RUN", style="dim italic")
            return out
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
