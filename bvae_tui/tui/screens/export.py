"""Export modal: traversal GIF options (images, limit, steps, output path).

It only collects and checks the options; the export itself runs in a thread worker of the app
(it loads a checkpoint and decodes, which takes a moment) and the written path is shown after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from bvae_tui.safe_text import as_text, plain


@dataclass(frozen=True)
class ExportOptions:
    images: list[int] | None
    limit: float
    steps: int
    output: str | None


def parse_images(text: str) -> list[int] | None:
    """``"1, 5 9"`` -> [1, 5, 9]; blank -> None (the run's default fixed images)."""
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError("images: dataset indices separated by spaces or commas") from None
    if any(v < 0 for v in values):
        raise ValueError("images: indices must be 0 or more")
    return values


def _left_ellipsis(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters (a path's end says the most)."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


class ExportScreen(ModalScreen[ExportOptions | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "export", "Export"),
    ]

    def __init__(self, run_id: str, exports_dir: Path) -> None:
        super().__init__()
        self.run_id = run_id
        self.exports_dir = exports_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # The id is the run folder's name: Text, never markup.
            yield Static(Text.assemble("Export traversal GIF of ", (plain(self.run_id), "bold")),
                         classes="title")
            with Grid(classes="form-grid"):
                yield Label("images")
                yield Input(placeholder="default (dSprites: square, ellipse, heart)",
                            id="exp-images", compact=True)
                yield Label("limit")
                yield Input("3.0", id="exp-limit", compact=True)
                yield Label("steps")
                yield Input("10", id="exp-steps", compact=True)
                yield Label("output")
                yield Input(placeholder=_left_ellipsis(plain(f"{self.exports_dir}/…gif"), 56),
                            id="exp-output", compact=True)
            yield Static("", id="exp-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export (ctrl+s)", variant="primary", id="do-export", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#exp-limit", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "do-export":
            self.action_export()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_export()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        error = self.query_one("#exp-error", Static)
        try:
            images = parse_images(self.query_one("#exp-images", Input).value)
            try:
                limit = float(self.query_one("#exp-limit", Input).value)
            except ValueError:
                raise ValueError("limit: a number such as 3") from None
            try:
                steps = int(self.query_one("#exp-steps", Input).value)
            except ValueError:
                raise ValueError("steps: a whole number such as 10") from None
        except ValueError as exc:
            error.update(as_text(exc))
            return
        output = self.query_one("#exp-output", Input).value.strip() or None
        # Range checks belong to the engine (bvae_tui.engine.analysis.export.check_options); ask it.
        from bvae_tui.engine.analysis.export import check_options

        try:
            check_options(limit, steps)
        except Exception as exc:  # noqa: BLE001 - a UserError: show its line
            error.update(as_text(exc))
            return
        self.dismiss(ExportOptions(images, limit, steps, output))
