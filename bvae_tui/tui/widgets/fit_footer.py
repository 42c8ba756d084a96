"""A footer that fits its terminal: at a narrow width it drops the command palette's hint and
then the spacing between keys, so that every key it lists stays readable (Textual's footer cuts
the last ones off: ``v Co▏``, ``q Qui▏``). The palette itself stays on ctrl+p; every key is in
``?`` anyway."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

PALETTE_WIDTH = 14  # "▏^p palette " and its padding
NORMAL_GAP = 4  # a key's padding and its description's, in the normal style
COMPACT_GAP = 2


def footer_style(width: int, words: int, keys: int) -> tuple[bool, bool]:
    """(compact, show the palette's hint) for ``keys`` bindings whose keys and descriptions
    take ``words`` characters: the roomiest style that fits ``width``."""
    for compact, palette in ((False, True), (True, True), (False, False), (True, False)):
        gap = COMPACT_GAP if compact else NORMAL_GAP
        if words + gap * keys + (PALETTE_WIDTH if palette else 0) <= width:
            return compact, palette
    return True, False


class FitFooter(Footer):
    """:class:`Footer`, in the roomiest style that fits the width (see :func:`footer_style`)."""

    def compose(self) -> ComposeResult:
        self._fit()
        yield from super().compose()

    async def on_resize(self) -> None:
        if self._bindings_ready and self._fit():
            await self.recompose()

    def _fit(self) -> bool:
        """Pick the style for the width and the keys shown; True when it changed."""
        if not self.is_attached:
            return False
        seen: dict[str, str] = {}
        for _, binding, _, _ in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen[binding.action] = self.app.get_key_display(binding) + binding.description
        width = self.size.width or self.app.size.width
        compact, palette = footer_style(width, sum(map(len, seen.values())), len(seen))
        changed = (compact, palette) != (self.compact, self.show_command_palette)
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        self.set_reactive(Footer.show_command_palette, palette)
        return changed
