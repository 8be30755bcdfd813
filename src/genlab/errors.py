"""Errors that a user can cause and fix.

Every error a user can provoke (a bad config key, a corrupt image, a checkpoint of
another model) is a :class:`GenlabError`. The command line prints its message and
exits with status 2 instead of showing a traceback.
"""


class GenlabError(Exception):
    """Base class of all user-facing errors; the message says what was wrong and what is allowed."""


class ConfigError(GenlabError):
    """A config key is unknown, ill-typed or out of range."""


class DataError(GenlabError):
    """A dataset or one of its files cannot be read."""


class ImageDecodeError(DataError):
    """One image file cannot be decoded; the message names the file."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(GenlabError):
    """A checkpoint is missing, corrupt, unsafe or belongs to another model."""


class TrainingDiverged(GenlabError):
    """A loss became NaN or infinite during training."""
