"""What a run prints besides its results: one log format, and the noise a user cannot act on kept out.

Every message of the package goes through the ``hapi_runner`` logger as
``hapi_runner: LEVEL: message`` on stderr, from the command line and from
Python alike. Paddle puts a handler of its own format on the root logger at
import; records of ours are kept off it, so each line prints once, in our
format. Warnings that come from the package's own choices and tell the user
nothing they could change are filtered by their exact message; every other
warning still shows.
"""

from __future__ import annotations

import logging
import sys
import warnings

LOGGER = "hapi_runner"
FORMAT = "hapi_runner: %(levelname)s: %(message)s"
# The format of the handler Paddle adds to the root logger when it is imported (Paddle 3.x).
PADDLE_FORMAT = "[%(asctime)-15s] [%(levelname)8s] %(filename)s:%(lineno)s - %(message)s"

# (message start, why it is noise): matched with warnings.filterwarnings, so only these exact warnings go.
NOISE = (
    ("No ccache found", "Paddle's import: ccache only matters for compiling custom operators"),
    ("To copy construct from a tensor", "hapi's own train_batch calls paddle.to_tensor on tensors"),
    ("When training, we now always track global mean and variance",
     "BatchNorm in training mode, every epoch of every ResNet: it describes Paddle's behaviour, not the run"),
)


def silence_noise() -> None:
    """Filters the warnings of :data:`NOISE` and matplotlib's one-off font-cache note; safe to call again."""
    for message, _ in NOISE:
        warnings.filterwarnings("ignore", message=message)
    # "generated new fontManager": an INFO line the first time matplotlib runs, which Paddle's root handler prints
    # in the middle of training; matplotlib's own warnings (a slow first font scan) still show.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (it may have been replaced since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _NotOurs(logging.Filter):
    """Keeps the package's records off a handler that would print them a second time in another format."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(LOGGER)


def setup_logging() -> logging.Logger:
    """The ``hapi_runner`` logger, printing ``hapi_runner: LEVEL: message`` to stderr at INFO; safe to call again.

    Records still propagate to the root logger (a user's handlers and
    pytest's ``caplog`` see them); only Paddle's own root handler skips them.
    """
    silence_noise()
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        fmt = getattr(handler.formatter, "_fmt", None)  # logging.Formatter's own attribute, not Paddle's
        if fmt == PADDLE_FORMAT and not any(isinstance(f, _NotOurs) for f in handler.filters):
            handler.addFilter(_NotOurs())
    return logger
