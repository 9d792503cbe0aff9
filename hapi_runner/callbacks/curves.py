"""Curves: ``curves.png``, loss and top-1 accuracy per epoch, train against evaluation, redrawn as training goes."""

from __future__ import annotations

import importlib.util
import io
import os
from typing import Any, Dict, List, Optional, Sequence

from ..config.checks import check_int
from ..errors import UsageError
from ..training.distributed import is_main
from ..runfolder.atomic import atomic_write_bytes
from .base import RunCallback

PANELS = (("loss", "Loss"), ("acc_top1", "Top-1 accuracy"))


class Curves(RunCallback):
    """Redraws a two-panel figure (loss, top-1 accuracy; train and evaluation) from a History's rows.

    The figure is drawn once per epoch: after the epoch's evaluation, or,
    for an epoch without one, when the next epoch starts or training ends.
    Place it after the ``History`` in the callback list, so the rows are
    current when it draws. Only the main process of a distributed run draws.

    Rendering uses matplotlib's Agg canvas directly, not pyplot, so the
    backend a user chose elsewhere is left alone and no window opens.

    Args:
        history: the run's :class:`~hapi_runner.callbacks.History`; its
            ``rows`` are read, never changed.
        path: the PNG to write, e.g. ``<run>/curves.png``.
        title: a line above the panels, e.g. ``resnet18 on cifar10``.
            Defaults to None.
        dpi: resolution. Defaults to 100 (a 1000 x 400 pixel image).
    """

    def __init__(self, history, path: str, title: Optional[str] = None, dpi: int = 100):
        super().__init__()
        if not hasattr(history, "rows"):
            raise UsageError(f"history must be a hapi_runner History (something with .rows), got {type(history).__name__}.")
        if not path or not isinstance(path, (str, os.PathLike)):
            raise UsageError(f"path must be a file path such as '<run>/curves.png', got {path!r}.")
        check_int("dpi", dpi, 10, unit="dots per inch")
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("curves.png needs matplotlib: pip install matplotlib, or turn the curves off.")
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
            atomic_write_bytes(self.path, render_png(rows, self.title, self.dpi))


def render_png(rows: Sequence[Dict[str, Any]], title: Optional[str] = None, dpi: int = 100) -> bytes:
    """The figure for History ``rows`` as PNG bytes.

    Each panel plots ``train_<metric>`` and ``eval_<metric>`` against
    ``epoch``; a series without values (no evaluation, or an epoch skipped by
    ``eval_freq``) is drawn from the points it has, or left out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for ax, (metric, label) in zip(axes, PANELS):
        for source, style in (("train", "-o"), ("eval", "--s")):
            epochs, values = _series(rows, f"{source}_{metric}")
            if values:
                ax.plot(epochs, values, style, markersize=3, label="evaluation" if source == "eval" else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        # Whole epochs only: a 3-epoch run should not show epoch 1.5.
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    return buf.getvalue()


def _series(rows: Sequence[Dict[str, Any]], key: str):
    epochs: List[int] = []
    values: List[float] = []
    for index, row in enumerate(rows):
        value = row.get(key)
        if value is None or value != value:  # missing or NaN
            continue
        epochs.append(row.get("epoch") or index + 1)
        values.append(float(value))
    return epochs, values
