"""Every kind of failure a user can be shown, in one place.

The CLI turns each into one line on stderr and an exit code; ``--debug`` adds
the traceback. Library code raises them with a message that says what is
wrong, what is allowed, and what to do.
"""


class HapiRunnerError(Exception):
    """A runtime failure the user can act on (missing data, bad checkpoint). Exit code 1."""

    exit_code = 1


class UsageError(HapiRunnerError, ValueError):
    """A bad argument, flag or config value. Exit code 2.

    Also a ``ValueError``, so Python callers can catch it the usual way.
    """

    exit_code = 2


class DataFileError(HapiRunnerError):
    """A data file that is missing, truncated or not in the expected format."""


class ExportVerificationError(HapiRunnerError):
    """The exported graph does not predict what the trained network predicts."""


class GraphConversionError(HapiRunnerError):
    """``paddle.jit.save`` could not turn the network's forward into a static graph."""


class NonFiniteLossError(HapiRunnerError):
    """The training loss became NaN or infinite. Exit code 1."""

    exit_code = 1


class TrainingInterrupted(HapiRunnerError):
    """Training was stopped by a signal; ``exit_code`` is 128 + the signal number (130 or 143)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)  # 130 for SIGINT, 143 for SIGTERM, as shells report them


class CheckpointError(HapiRunnerError):
    """A checkpoint folder that is incomplete, truncated or corrupt."""


class DataLayoutError(DataFileError, UsageError):
    """Data laid out in a way training cannot use (no class folders, one class, an empty class). Exit code 2.

    Bad input like a bad flag, so it exits with the same code; still a
    ``DataFileError`` for callers that catch data problems.
    """
