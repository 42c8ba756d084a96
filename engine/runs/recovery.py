"""After a crash: which checkpoint is still good, and the debris of interrupted writes.

Torch-free, so the faces can decide what `bvae resume` will do before anything heavy loads. A
checkpoint is checked as the zip archive ``torch.save`` writes, with a CRC per member: a file cut
short or damaged on disk fails here; the trainer's loader has the last word.
"""

from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bvae_tui.engine.atomic import KEEP_LINK_PREFIX, temp_target
from bvae_tui.engine.runs.records import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EXPORTS_DIR,
    LAST_CHECKPOINT,
    METRICS_FILE,
    PREVIEW_FILES,
    PREVIEWS_DIR,
    PREVIOUS_CHECKPOINT,
    STATUS_FILE,
)
from bvae_tui.engine.runs.store import PROBES_TEMP, TRUNCATE_TEMP, Run

# What the trainer writes, by folder: with the run's lock held, their temp files are debris.
TRAINER_FILES = {
    "": {STATUS_FILE, CONFIG_FILE, METRICS_FILE},
    CHECKPOINTS_DIR: {LAST_CHECKPOINT, PREVIOUS_CHECKPOINT},
    PREVIEWS_DIR: set(PREVIEW_FILES.values()),
}
# `bvae eval` and exports write without the lock: their temp files go only once surely abandoned.
OTHER_FOLDERS = ("", EXPORTS_DIR)
OTHER_DEBRIS_AGE_S = 600.0


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a checkpoint (missing, cut short, damaged), or None if it looks
    whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        return "missing"
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"corrupt ({type(exc).__name__})"
    return None if bad is None else f"corrupt (its member {bad} fails its CRC)"


@dataclass(frozen=True)
class UsableCheckpoint:
    """The checkpoint to load (None: none is usable) and a one-line note when it is not
    ``last.pt``, or why none is usable although one was written."""

    path: Path | None
    note: str | None = None

    @property
    def damaged(self) -> bool:
        """A checkpoint was written but none can be read."""
        return self.path is None and self.note is not None


def usable_checkpoint(run: Run) -> UsableCheckpoint:
    """``last.pt`` if it is whole, else the previous checkpoint (with a note saying so)."""
    last_problem = checkpoint_problem(run.last_checkpoint)
    if last_problem is None:
        return UsableCheckpoint(run.last_checkpoint)
    prev_problem = checkpoint_problem(run.previous_checkpoint)
    shown = f"{CHECKPOINTS_DIR}/{LAST_CHECKPOINT}"
    if prev_problem is None:
        return UsableCheckpoint(run.previous_checkpoint,
                                f"{shown} is {last_problem}; using {PREVIOUS_CHECKPOINT}, the "
                                "checkpoint before it")
    if last_problem == prev_problem == "missing":
        return UsableCheckpoint(None)
    return UsableCheckpoint(None, f"{shown} is {last_problem} and {PREVIOUS_CHECKPOINT} is "
                                  f"{prev_problem}")


def _is_debris(folder: str, name: str, mtime: float, now: float) -> bool:
    if folder == "" and name in (TRUNCATE_TEMP, PROBES_TEMP):
        return True
    if folder == CHECKPOINTS_DIR and name.startswith(KEEP_LINK_PREFIX):
        return True
    target = temp_target(name)
    if target is None:
        return False
    if target in TRAINER_FILES.get(folder, ()):
        return True
    return folder in OTHER_FOLDERS and now - mtime > OTHER_DEBRIS_AGE_S


def remove_debris(run: Run) -> list[Path]:
    """Delete the temp files of interrupted atomic writes; return those removed.

    Call it holding the run's lock (the trainer's files have no other writer then). Readers
    never open these hidden names, so until then they are only clutter.
    """
    removed = []
    now = time.time()
    for folder in {*TRAINER_FILES, *OTHER_FOLDERS}:
        try:
            entries = list(os.scandir(run.path / folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if _is_debris(folder, entry.name, entry.stat().st_mtime, now):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except FileNotFoundError:
                continue
    return removed
