"""The one error type a user can act on, shared by every layer (datasets, engine, faces).

Everything a user can cause (bad options, missing files, unreachable servers) raises a subclass of
:class:`UserError` whose message is a single line naming the problem and the fix. The CLI and the
TUI print that line; anything else is a bug and may show a traceback.
"""


class UserError(Exception):
    """An error caused by input or environment, shown to the user as one line."""
