"""Typed errors a user can cause. Each carries one sentence meant to be shown as is.

The UI and the CLI catch :class:`TransferLabError` and print ``str(err)``; anything else is a bug.
"""


class TransferLabError(Exception):
    """Base class: ``str(err)`` is a single sentence fit for a user."""


class UnknownModelError(TransferLabError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else "Unknown model."


class UnknownStrategyError(TransferLabError, ValueError):
    pass


class BadSettingError(TransferLabError, ValueError):
    """A training or inference setting is out of range (zero or NaN learning rate, batch size 0, ...)."""


class DataNotFoundError(TransferLabError, FileNotFoundError):
    pass


class BadInputError(TransferLabError, ValueError):
    """Input data a user supplied cannot be used: empty text, corrupt image, malformed file."""


class RunNotFoundError(TransferLabError, FileNotFoundError):
    pass


class WeightsUnavailableError(TransferLabError, RuntimeError):
    """Pretrained weights were asked for but neither the Hub nor an offline package can provide them."""


class OutOfMemoryError(TransferLabError, RuntimeError):
    pass


class CancelledError(TransferLabError):
    """A run was cancelled on request; its last checkpoint is kept."""
