"""Finding what a user names on the command line: a run or a sweep, by id, id prefix or name."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def match_ref(ref: str, items: list[Any], kind: str, where: Path, lister: str,
              error: type[Exception]) -> Any:
    """The item (with ``id`` and ``name``) that ``ref`` names: its id, a unique id prefix or a
    unique name; else ``error`` with a line saying there is none, or which ones match."""
    if not ref.strip():
        raise error(f"no {kind} named (the name is empty); give its id, a unique id prefix or "
                    f"its name; '{lister}' lists them")
    exact = [i for i in items if i.id == ref]
    if exact:
        return exact[0]
    matches = [i for i in items if i.id.startswith(ref)] or [i for i in items if i.name == ref]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise error(f"no {kind} '{ref}' under {where}; '{lister}' lists them")
    listed = ", ".join(i.id for i in matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise error(f"'{ref}' matches {len(matches)} {kind}s ({listed}); give more of the id")
