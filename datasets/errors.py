"""Errors of the data layer: a :class:`DataError` is a :class:`UserError` about a dataset."""

from bvae_tui.errors import UserError

__all__ = ["UserError", "DataError"]


class DataError(UserError):
    """A dataset cannot be found, downloaded, prepared or read."""
