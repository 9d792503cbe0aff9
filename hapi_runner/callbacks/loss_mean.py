"""LossMean: makes the ``loss`` in hapi's epoch and evaluation logs the mean over the batches.

hapi's ``_run_one_epoch`` leaves the *last batch's* loss in the logs it
passes to ``on_epoch_end`` and ``on_eval_end`` (its accuracy metrics, by
contrast, accumulate over the whole pass). Every callback after this one in
the list sees the sample-weighted mean instead, so early stopping on ``loss``,
checkpoint ``best`` and the recorded history all use the real figure.
"""

from __future__ import annotations

from ..training.log_values import scalar
from .base import RunCallback


class _Mean:
    def __init__(self):
        self.total = 0.0
        self.count = 0

    def add(self, logs) -> None:
        logs = logs or {}
        loss = scalar(logs.get("loss"))
        count = int(logs.get("batch_size") or 1)
        if loss is not None:
            self.total += loss * count
            self.count += count

    def write(self, logs) -> None:
        if logs is not None and self.count:
            logs["loss"] = [self.total / self.count]


class LossMean(RunCallback):
    """Replaces ``logs['loss']`` at epoch and evaluation end with the mean over the pass.

    Must come first in the callback list (the Runner puts it there): hapi
    hands the same logs dict to every callback in turn.
    """

    def __init__(self):
        super().__init__()
        self._train = _Mean()
        self._eval = _Mean()

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._train = _Mean()

    def on_train_batch_end(self, step, logs=None):
        self._train.add(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._train.write(logs)

    def on_eval_begin(self, logs=None):
        self._eval = _Mean()

    def on_eval_batch_end(self, step, logs=None):
        self._eval.add(logs)

    def on_eval_end(self, logs=None):
        self._eval.write(logs)
