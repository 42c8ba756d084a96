"""Messages the background watchers post to screens.

Each message carries the whole current state of one thing (not a delta), so a newer message of
the same kind can replace an older one still waiting in the queue (``can_replace``): a fast
metrics stream is coalesced into one repaint without losing rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message

from bvae_tui.engine.runs.records import Status
from bvae_tui.tui.run_data import MetricsHistory, RunRow


class _Latest(Message):
    """A state message: a newer one of the same type for the same source supersedes it."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self) and getattr(message, "source", None) == self.source


class RunsUpdated(_Latest):
    def __init__(self, source: str, rows: list[RunRow], sweeps: list[Any] | None = None) -> None:
        super().__init__(source)
        self.rows = rows
        self.sweeps = sweeps or []  # SweepRow of each sweep


class SweepUpdated(_Latest):
    """The sweep screen's grid and scheduler, as read by its watcher."""

    def __init__(self, source: str, view: Any) -> None:
        super().__init__(source)
        self.view = view


class SweepLaunched(Message):
    def __init__(self, path: Path | None, error: str | None, notes: list[str]) -> None:
        super().__init__()
        self.path = path
        self.error = error
        self.notes = notes


class StatusChanged(_Latest):
    def __init__(self, source: str, status: Status) -> None:
        super().__init__(source)
        self.status = status


class MetricsChanged(_Latest):
    def __init__(self, source: str, history: MetricsHistory) -> None:
        super().__init__(source)
        self.history = history


class PreviewChanged(_Latest):
    def __init__(self, source: str, images: dict[str, Any]) -> None:
        super().__init__(source)
        self.images = images  # kind -> (H, W, 3) uint8 array


class LogChanged(_Latest):
    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(source)
        self.lines = lines


class ScoresChanged(_Latest):
    def __init__(self, source: str, scores: dict[str, float], mi: Any = None) -> None:
        super().__init__(source)
        self.scores = scores
        self.mi = mi  # the evaluation's MIMatrix, or None


class ProbesChanged(_Latest):
    def __init__(self, source: str, rows: list[Any]) -> None:
        super().__init__(source)
        self.rows = rows  # every ProbeRow so far, by iteration


class WatchError(_Latest):
    """Reading the run directory failed (shown once per distinct message)."""

    def __init__(self, source: str, error: str) -> None:
        super().__init__(source)
        self.error = error


class RunGone(_Latest):
    """The run directory disappeared (deleted from another terminal)."""


class DevicesUpdated(_Latest):
    def __init__(self, source: str, gpus: list[Any], reason: str | None) -> None:
        super().__init__(source)
        self.gpus = gpus
        self.reason = reason


class ExportDone(Message):
    def __init__(self, run_id: str, path: Path | None, error: str | None) -> None:
        super().__init__()
        self.run_id = run_id
        self.path = path
        self.error = error


class CompareChanged(_Latest):
    """The compared runs' data, after any of them changed."""

    def __init__(self, source: str, runs: list[Any]) -> None:
        super().__init__(source)
        self.runs = runs  # engine.analysis.compare.CompareRun


class PreviewsChanged(_Latest):
    """Every compared run's latest traversal preview (run id -> (H, W, 3) uint8 array)."""

    def __init__(self, source: str, images: dict[str, Any]) -> None:
        super().__init__(source)
        self.images = images
