"""A field's choices in one row: pick one, or several for a sweep.

``←``/``→`` move the cursor, ``enter`` picks the choice under it (only that one), ``space`` adds
it to the picks or removes it (several picks sweep the field: ``H,B``). A click picks a choice;
a shift- or ctrl-click adds or removes it. The picks are shown in reverse video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from bvae_tui.engine.config import FieldInfo


class ChoiceField(Widget, can_focus=True):
    """One or several of the field's choices."""

    DEFAULT_CSS = """
    ChoiceField { height: 1; width: 1fr; }
    """
    BINDINGS = [
        Binding("left", "move(-1)", "Previous", show=False),
        Binding("right", "move(1)", "Next", show=False),
        Binding("space", "toggle", "Add/remove", show=False),
        Binding("enter", "only", "Pick", show=False),
    ]

    class Changed(Message):
        """The picks changed; ``value`` is :attr:`ChoiceField.field_value`."""

        def __init__(self, field: ChoiceField, value: Any) -> None:
            super().__init__()
            self.field = field
            self.value = value

        @property
        def control(self) -> ChoiceField:
            return self.field

    def __init__(self, info: FieldInfo, *, id: str) -> None:
        super().__init__(id=id)
        self.choices: list[str] = [str(c) for c in info.choices or ()]
        self.picked: list[str] = [str(info.default)]
        self.cursor = self.choices.index(str(info.default))

    # The value ---------------------------------------------------------------------------------
    @property
    def field_value(self) -> Any:
        """The one pick, or the picks (in the order of the choices) when there are several."""
        picks = [c for c in self.choices if c in self.picked]
        return picks[0] if len(picks) == 1 else picks

    def set_field_value(self, value: Any) -> None:
        values = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        self._set([v for v in values if v in self.choices] or self.picked)
        if self.picked:
            self.cursor = self.choices.index(self.picked[0])

    def _set(self, picks: Sequence[str]) -> None:
        before = self.field_value
        self.picked = [c for c in self.choices if c in picks]
        self.refresh()
        if self.field_value != before:
            self.post_message(self.Changed(self, self.field_value))

    # Drawing -----------------------------------------------------------------------------------
    def render(self) -> Text:
        text = Text()
        for i, choice in enumerate(self.choices):
            style = "reverse bold" if choice in self.picked else ""
            if i == self.cursor and self.has_focus:
                style += " underline"
            text.append(f" {choice} ", style=style.strip())
            text.append(" ")
        if len(self.picked) > 1:
            text.append(f"sweep: {len(self.picked)} ", style="italic")
        if self.has_focus:
            text.append("enter: pick · space: add/remove", style="dim")
        return text

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # Keys and mouse ----------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        self.cursor = (self.cursor + step) % len(self.choices)
        self.refresh()

    def action_toggle(self) -> None:
        choice = self.choices[self.cursor]
        if choice in self.picked:
            if len(self.picked) > 1:  # at least one stays picked
                self._set([c for c in self.picked if c != choice])
        else:
            self._set([*self.picked, choice])

    def action_only(self) -> None:
        self._set([self.choices[self.cursor]])

    def on_click(self, event: events.Click) -> None:
        x = 0
        for i, choice in enumerate(self.choices):
            width = len(choice) + 2
            if x <= event.x < x + width:
                self.cursor = i
                if event.shift or event.ctrl:
                    self.action_toggle()
                else:
                    self._set([choice])
                return
            x += width + 1
