"""Curves: ``curves.png``, loss, top-1 accuracy and learning rate per epoch, redrawn as training goes."""

from __future__ import annotations

import os
from typing import Optional

from ..config.checks import check_int
from ..errors import UsageError
from ..training.distributed import is_main
from ..report.figures import curves_png, require_drawing
from ..runfolder.atomic import atomic_write_bytes
from .base import RunCallback

class Curves(RunCallback):
    """Redraws the run's curves (loss, top-1 accuracy, learning rate; :func:`report.figures.curves_png`) from a History's rows.

    The figure is drawn once per epoch: after the epoch's evaluation, or,
    for an epoch without one, when the next epoch starts or training ends.
    Place it after the ``History`` in the callback list, so the rows are
    current when it draws. Only the main process of a distributed run draws.


    Args:
        history: the run's :class:`~hapi_runner.callbacks.History`; its
            ``rows`` are read, never changed.
        path: the PNG to write, e.g. ``<run>/curves.png``.
        title: a line above the panels, e.g. ``resnet18 on cifar10``.
            Defaults to None.
        dpi: resolution. Defaults to 100 (a 1200 x 360 pixel image).
    """

    def __init__(self, history, path: str, title: Optional[str] = None, dpi: int = 100):
        super().__init__()
        if not hasattr(history, "rows"):
            raise UsageError(f"history must be a hapi_runner History (something with .rows), got {type(history).__name__}.")
        if not path or not isinstance(path, (str, os.PathLike)):
            raise UsageError(f"path must be a file path such as '<run>/curves.png', got {path!r}.")
        check_int("dpi", dpi, 10, unit="dots per inch")
        require_drawing()
        self.history = history
        self.path = os.fspath(path)
        self.title = title
        self.dpi = dpi
        self._pending = False

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._pending = False

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._flush()

    def on_epoch_end(self, epoch, logs=None):
        # Wait for the evaluation that may follow: one drawing per epoch, with both curves.
        self._pending = True

    def on_eval_end(self, logs=None):
        self._pending = True
        self._flush()

    def on_train_end(self, logs=None):
        self._flush()

    def _flush(self) -> None:
        if self._pending and is_main():
            self.draw()
        self._pending = False

    # -- drawing -----------------------------------------------------------
    def draw(self) -> None:
        """Writes the figure for the current rows (atomically); nothing when there are none."""
        rows = list(self.history.rows)
        if rows:
            atomic_write_bytes(self.path, curves_png(rows, self.title, self.dpi))
