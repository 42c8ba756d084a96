"""Names and labels cut to a width without losing what tells them apart.

Run names often share a long start (``long beta=1 seed=1 iters=1000`` and ``...iters=2000``):
cut at the end, two rows read the same. Here a name that does not fit keeps its start and the
part from where it parts from the others, with an ellipsis between; a label made of ``key=value``
parts puts the parts that differ between the labels first, so that a narrow legend still shows
them. Pure text functions (no Textual): easy to test, shared by every screen that names runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from bvae_tui.safe_text import plain

ELLIPSIS = "…"
_SEPARATORS = " -_=.,/:"


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def parting_points(name: str, others: Sequence[str]) -> list[int]:
    """Where ``name`` starts to differ from the most similar of ``others``: first moved back to
    the start of that word (``iters=2000``), then of that value (``2000``), then exact; empty
    when no other name shares a start with it."""
    point = min(max((_common_prefix(name, o) for o in others if o != name), default=0),
                len(name))
    if point == 0:
        return []

    def back(at: int, separators: str) -> int:
        while at > 0 and name[at - 1] not in separators:
            at -= 1
        return at

    return sorted({back(point, " "), back(point, _SEPARATORS), point})


def fit(name: str, width: int, others: Sequence[str] = ()) -> str:
    """``name`` in at most ``width`` characters: whole when it fits, else its start, an
    ellipsis and the part from where it parts from ``others`` (its end when none does)."""
    name = plain(name)
    if width <= 0:
        return ""
    if len(name) <= width:
        return name
    if width == 1:
        return ELLIPSIS
    points = [p for p in parting_points(name, others) if 0 < p < len(name)]
    if not points:  # nothing shared, or nothing differs: cut the end
        return name[: width - 1] + ELLIPSIS
    for point in points:  # the widest differing part that fits, with some of the start
        tail = name[point:]
        if len(tail) + 2 <= width:
            return name[: width - 1 - len(tail)] + ELLIPSIS + tail
    return (ELLIPSIS + name[points[-1]:])[: width - 1] + ELLIPSIS  # the differing part's start


def fit_all(names: Sequence[str], width: int) -> list[str]:
    """Every name :func:`fit` to ``width`` against the others."""
    clean = [plain(n) for n in names]
    return [fit(n, width, clean) for n in clean]


def differing_first(labels: Sequence[str]) -> list[str]:
    """Each label's space-separated parts reordered: those that not every label shares first
    (``obj=H β=1 iters=1000`` and ``obj=H β=1 iters=2000`` read ``iters=1000 obj=H β=1``)."""
    split = [plain(label).split(" ") for label in labels]
    if len(split) < 2:
        return [" ".join(parts) for parts in split]
    shared = set(split[0]).intersection(*map(set, split[1:]))
    return [" ".join([p for p in parts if p not in shared] + [p for p in parts if p in shared])
            for parts in split]


def fit_middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut in the middle when it does not fit: its start and
    (the larger share) its end, which is where ids of a sweep's members differ."""
    text = plain(text)
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    tail = (width - 1) * 2 // 3
    return text[: width - 1 - tail] + ELLIPSIS + text[len(text) - tail:]
