"""Colours the faces share: one state -> colour map for `bvae runs` and the TUI alike."""

from __future__ import annotations

STATE_STYLES = {
    "queued": "cyan",
    "running": "bold green",
    "finished": "blue",
    "stopped": "yellow",
    "failed": "bold red",
    "lost": "bold magenta",
}


def state_style(state: str | None) -> str:
    """The rich style of a state; plain for one this version does not know."""
    return STATE_STYLES.get(state or "", "")
