"""Help modal: what each key does on the screen it was opened from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

GENERAL = """
**Everywhere**: `?` this help · `ctrl+p` command palette · `q` quit (training goes on: runs are
detached workers; a new `bvae-tui` picks them up).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Markdown(self.text.strip() + "\n\n" + GENERAL.strip())

    def action_close(self) -> None:
        self.dismiss(None)
