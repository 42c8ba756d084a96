"""The last lines of a run's worker.log."""

from __future__ import annotations

from textual.widgets import Log


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
            self.write_lines(lines[n:])
        else:
            self.clear()
            self.write_lines(lines or ["(worker.log is empty)"])
        self._shown = list(lines)
