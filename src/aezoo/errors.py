"""Exceptions that reach users. Each message is one line that names the problem and where it is.

The CLI prints ``AezooError`` messages as a single line on stderr and exits non-zero; anything
else is a bug and keeps its traceback.
"""


class AezooError(Exception):
    """Base class of every error aezoo raises on purpose."""


class ConfigError(AezooError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class DataError(AezooError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class CheckpointError(AezooError):
    """A run folder or checkpoint is missing, corrupt or of an unknown format."""


class TrainingError(AezooError):
    """Training cannot go on (for example a non-finite loss)."""


class NotSupportedError(AezooError):
    """The model cannot do what was asked (for example sampling from a non-generative model)."""


class DataWarning(UserWarning):
    """The data loads, but something about it changes what a run measures (values clipped to the
    training range, for example). The CLI prints it as one line on stderr."""


class RunWarning(UserWarning):
    """A run folder is usable but not what it may seem (an unfinished run serving its newest weights).
    The CLI prints it as one line on stderr."""
