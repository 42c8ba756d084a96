"""Engine errors: all are :class:`bvae_tui.errors.UserError`, shown to the user as one line."""

from bvae_tui.datasets.errors import DataError
from bvae_tui.errors import UserError

__all__ = ["UserError", "DataError", "ConfigError", "RunError", "DeviceError", "SweepError"]


class ConfigError(UserError):
    """A training option is out of bounds or inconsistent.

    ``field`` names the TrainConfig field the message is about (None: several, or none), so a
    form can mark that field without reading the message.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RunError(UserError):
    """A run cannot be found, created, resumed, stopped or read."""


class DeviceError(UserError):
    """The requested device does not exist or cannot be used."""


class SweepError(UserError):
    """A sweep cannot be found, created, started, stopped or read."""
