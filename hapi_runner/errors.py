"""The two kinds of failure a user can be shown.

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


class DataLayoutError(DataFileError, UsageError):
    """Data laid out in a way training cannot use (no class folders, one class, an empty class). Exit code 2.

    Bad input like a bad flag, so it exits with the same code; still a
    ``DataFileError`` for callers that catch data problems.
    """
