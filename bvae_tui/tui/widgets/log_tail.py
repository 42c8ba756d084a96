"""The last lines of a run's worker.log."""

from __future__ import annotations

from textual.widgets import Log

# Whatever a program prints must not reach the terminal: the escape sequences and control
# characters that every face keeps out (bvae_tui.safe_text). A log line drops them rather than
# showing stand-ins: colour codes and progress bars are what logs are full of.
from bvae_tui.safe_text import CONTROLS, ESCAPES


def clean_line(line: str) -> str:
    """A log line as plain printable text: what a terminal would leave of a line redrawn with
    ``\\r`` (a progress bar: the part after the last one), escape sequences and other control
    characters removed, tabs expanded."""
    line = line.rstrip("\r\n")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    line = ESCAPES.sub("", line)
    return CONTROLS.sub("", line.expandtabs(8))


class LogTail(Log):
    """A read-only log view replaced wholesale with the file's current tail."""

    DEFAULT_CSS = """
    LogTail { height: 8; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=500, auto_scroll=True, id=id, classes=classes)
        self._shown: list[str] = []

    def set_lines(self, lines: list[str]) -> None:
        if lines == self._shown:
            return
        # Appending is cheaper and keeps the user's scroll position when the file only grew.
        n = len(self._shown)
        if n and lines[: n] == self._shown:
            self.write_lines([clean_line(line) for line in lines[n:]])
        else:
            self.clear()
            self.write_lines([clean_line(line) for line in lines] or ["(worker.log is empty)"])
        self._shown = list(lines)
