"""Text from run files, specs, paths and users, made safe to show in a terminal.

A run's name, device, error, eval keys or folder path are data, not instructions: written by a
worker, a hand-edited file or whoever named the folder. Shown as they are, a ``[/]`` in them is
rich or Textual markup (a MarkupError, or text that vanishes into a style) and an ESC or BEL
reaches the terminal (colours, a cleared screen, a new window title). Every face shows such a
value through this module:

* :func:`plain` - one printable line: escape sequences dropped, other control characters
  replaced by a visible stand-in;
* :func:`markup_safe` - :func:`plain`, escaped for rich markup (for ``console.print`` lines
  that style their own parts);
* :func:`as_text` - :func:`plain` as a ``rich.text.Text``, which rich and Textual draw as it is
  (DataTable cells, Static contents, table cells).

rich is imported only by the last two: the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.style import Style
    from rich.text import Text

# Escape sequences, in their 7-bit (ESC ...) and 8-bit (C1) forms: CSI (colours, cursor moves,
# ESC [2J clearing the screen), the string commands OSC, DCS, SOS, PM and APC (window titles,
# links) up to their BEL or ST, and the two-character ones. Dropped whole: a half-removed
# sequence would still show its parameters as noise.
ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# What is left that a terminal would act on or that would break a one-line cell: C0 (newline,
# tab and carriage return among them), DEL, C1, the line and paragraph separators, and the
# bidirectional overrides that can make text read backwards ("trojan source").
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _stand_in(char: str) -> str:
    """A visible stand-in for a control character: its Unicode control picture (␛, ␊, ␉) for
    C0 and DEL, the replacement character for the rest."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def plain(value: object) -> str:
    """``value`` as one line of printable text (``str(value)`` first; None reads as '')."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: nothing to do (no control character is printable)
        return text
    text = ESCAPES.sub("", text)
    return CONTROLS.sub(lambda m: _stand_in(m.group()), text)


def markup_safe(value: object) -> str:
    """:func:`plain`, escaped so that rich markup shows it literally (``[/]`` stays ``[/]``)."""
    from rich.markup import escape

    return escape(plain(value))


def as_text(value: object, style: str | Style = "") -> Text:
    """:func:`plain` as a rich Text in ``style``: drawn as it is, never parsed as markup."""
    from rich.text import Text

    return Text(plain(value), style=style)
