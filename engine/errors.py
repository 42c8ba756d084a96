"""Engine errors: all are :class:`datasets.errors.UserError`, shown to the user as one line."""

from datasets.errors import DataError, UserError

__all__ = ["UserError", "DataError", "ConfigError", "RunError", "DeviceError"]


class ConfigError(UserError):
    """A training option is out of bounds or inconsistent."""


class RunError(UserError):
    """A run cannot be found, created, resumed, stopped or read."""


class DeviceError(UserError):
    """The requested device does not exist or cannot be used."""
