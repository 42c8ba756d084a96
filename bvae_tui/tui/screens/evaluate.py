"""The evaluate modal: fast or full scoring of one run, the marked runs or a sweep's members.

Dismisses with ``"fast"``, ``"full"`` or None (cancelled); the app launches the detached
evaluation (:mod:`bvae_tui.tui.eval_actions`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

EXPLAIN = ("Scores every metric of `bvae eval` in a background process (it goes on if this "
           "app closes) and writes eval.json; the runs table shows its progress. Fast: about a "
           "tenth of the samples (noisier, recorded as fast); full: disentanglement_lib's "
           "sample counts.")


class EvaluateScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("f", "choose('fast')", "Fast"),
        Binding("u", "choose('full')", "Full"),
        Binding("escape,n", "choose(None)", "Cancel"),
    ]

    def __init__(self, what: Text) -> None:
        """``what``: which runs, as a Text (it quotes run names: never parsed as markup)."""
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text.assemble("Evaluate ", self.what, "?"), classes="question")
            yield Static(Text(EXPLAIN, style="dim"), classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Fast (f)", variant="primary", id="fast", compact=True)
                yield Button("Full (u)", id="full", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#fast", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in ("fast", "full") else None)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
