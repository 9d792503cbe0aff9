"""Importing Paddle: the thread environment it reads set first, and its import-time caution left out.

Paddle reads ``OMP_NUM_THREADS`` once, when it is imported (and sets it to 1
when unset), so the thread count must be in the environment before the
first ``import paddle``; :mod:`hapi_runner.training.environment` decides
the count, this module puts it there and imports Paddle.
"""

from __future__ import annotations

import os
import sys
from typing import Tuple

# Paddle's import-time bootstrap (``__bootstrap__`` in paddle/base/__init__.py; paddle/fluid/ before 2.6) prints
# these two lines to sys.stderr whenever OMP_NUM_THREADS is above 1: a caution for data-parallel jobs and
# OpenBLAS builds. There is no flag to turn it off. hapi_runner sets the thread count itself
# (environment.configure_threads), so on its runs the lines are noise; every other line goes through.
OMP_WARNING_PREFIXES = ("WARNING: OMP_NUM_THREADS set to ", "PLEASE USE OMP_NUM_THREADS WISELY")


class _DropLines:
    """A text stream that passes everything to ``stream`` but the lines starting with ``prefixes``.

    ``print`` writes its text and its line end in two calls; the line end
    after a dropped text is dropped with it.
    """

    def __init__(self, stream, prefixes: Tuple[str, ...]):
        self._stream = stream
        self._prefixes = prefixes
        self._dropped = False

    def write(self, text: str) -> int:
        dropped, self._dropped = self._dropped, False
        if text.startswith(self._prefixes):
            self._dropped = True
            return len(text)
        if dropped and text == "\n":
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def import_paddle_without_thread_warning() -> None:
    """``import paddle``, leaving out the OMP_NUM_THREADS caution it prints (see :data:`OMP_WARNING_PREFIXES`).

    Does nothing when Paddle is already imported.
    """
    if paddle_imported():
        return
    real = sys.stderr
    sys.stderr = _DropLines(real, OMP_WARNING_PREFIXES)
    try:
        import paddle  # noqa: F401
    finally:
        sys.stderr = real


def paddle_imported() -> bool:
    return "paddle" in sys.modules


def set_thread_env(count: int) -> None:
    """Sets the thread environment read by Paddle, oneDNN and BLAS at import."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(count)
