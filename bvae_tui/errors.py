"""The one error type a user can act on, shared by every layer (datasets, engine, faces).

Everything a user can cause (bad options, missing files, unreachable servers) raises a subclass of
:class:`UserError` whose message is a single line naming the problem and the fix. The CLI and the
TUI print that line; anything else is a bug and may show a traceback.
"""


class UserError(Exception):
    """An error caused by input or environment, shown to the user as one line."""


def brief(exc: BaseException | str, limit: int = 120) -> str:
    """An exception (or text) as one short line: its first line, whitespace collapsed, cut at a
    word boundary with an ellipsis when longer than ``limit``."""
    text = str(exc).strip()
    first = " ".join(text.splitlines()[0].split()) if text else ""
    if not first and isinstance(exc, BaseException):
        return type(exc).__name__
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0] if " " in first[:limit] else first[:limit]
    return cut.rstrip(",;:") + "..."
