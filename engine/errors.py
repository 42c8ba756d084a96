"""Engine errors: all are :class:`bvae_tui.errors.UserError`, shown to the user as one line."""

from bvae_tui.datasets.errors import DataError
from bvae_tui.errors import UserError

__all__ = ["UserError", "DataError", "ConfigError", "RunError", "DeviceError"]


class ConfigError(UserError):
    """A training option is out of bounds or inconsistent."""


class RunError(UserError):
    """A run cannot be found, created, resumed, stopped or read."""


class DeviceError(UserError):
    """The requested device does not exist or cannot be used."""
