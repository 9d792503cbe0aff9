"""RunProgress: hapi's progress logger, counting the run's epochs and saying where the time goes."""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional

from paddle.callbacks import ProgBarLogger

# The figures added to every training progress line, in this order (hapi prints them as ``name: value``).
PACE_KEYS = ("img/s", "data", "left")


def clock_text(seconds: float) -> str:
    """``1:02:03`` or ``2:03`` for a duration in seconds (rounded to whole seconds)."""
    whole = int(round(max(seconds, 0.0)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Pace:
    """Where one epoch's training time goes, from the batch hooks: images/s, the share spent waiting for data, ETAs.

    Time from the end of one batch (or the epoch's start) to the beginning of
    the next is waiting for the data loader; the rest is the step itself.
    Figures are over the epoch so far, so they settle as it goes.

    Args:
        steps: batches in the epoch (None when unknown: no ETA).
        epochs_after: whole epochs of the run still to come after this one.
        clock: seconds from an arbitrary start. Defaults to ``time.perf_counter``.
    """

    def __init__(self, steps: Optional[int], epochs_after: int, clock: Callable[[], float] = time.perf_counter):
        self.steps, self.epochs_after, self.clock = steps, epochs_after, clock
        self.start = self.last_end = clock()
        self.waiting = 0.0
        self.images = 0
        self.done = 0

    def batch_begin(self) -> None:
        self.waiting += self.clock() - self.last_end

    def batch_end(self, images: int) -> None:
        self.last_end = self.clock()
        self.images += images
        self.done += 1

    def figures(self) -> Dict[str, str]:
        """``{"img/s": "412", "data": "3%", "left": "0:12 epoch, 3:40 run"}`` (run: this epoch's pace, evaluations excluded)."""
        elapsed = self.last_end - self.start
        if not self.done or elapsed <= 0:
            return {}
        figures = {"img/s": f"{self.images / elapsed:.0f}", "data": f"{100.0 * self.waiting / elapsed:.0f}%"}
        if self.steps:
            per_step = elapsed / self.done
            epoch_left = max(self.steps - self.done, 0) * per_step
            run_left = epoch_left + self.epochs_after * self.steps * per_step
            figures["left"] = f"{clock_text(epoch_left)} epoch, {clock_text(run_left)} run"
        return figures


class RunProgress(ProgBarLogger):
    """``paddle.callbacks.ProgBarLogger`` that numbers the run's epochs and adds images/s, data wait and ETAs.

    hapi numbers the epochs of every ``fit`` from 1 and counts only that
    call's; a resumed run would print ``Epoch 1/2``. ``epoch_offset`` (set
    by the Runner, as on every run callback) shifts both numbers. Each
    training line (progress bar or log line) also gets the :class:`Pace`
    figures, the way timm's and PaddleClas's logs show throughput, reader
    cost and ETA. The printing stays hapi's.

    Args:
        log_freq: print every this many batches. Defaults to 1.
        verbose: 0 silent, 1 a progress bar, 2 one line per print.
            Defaults to 2.
        clock: seconds from an arbitrary start, for the figures. Defaults to
            ``time.perf_counter``.

    Attributes:
        epoch_offset: epochs finished before this ``fit``. Defaults to 0.
        pace: the current epoch's :class:`Pace` (None before the first epoch).
    """

    epoch_offset = 0

    def __init__(self, log_freq: int = 1, verbose: int = 2, clock: Callable[[], float] = time.perf_counter):
        super().__init__(log_freq, verbose)
        self.clock = clock
        self.pace: Optional[Pace] = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.epochs = self.epochs + self.epoch_offset
        # hapi prints the values of these names from the logs it is given; ours are added to the logs below.
        self.train_metrics = [*self.train_metrics, *PACE_KEYS]

    def on_epoch_begin(self, epoch=None, logs=None):
        super().on_epoch_begin(epoch + self.epoch_offset, logs)
        epochs_after = max((self.epochs or 0) - (epoch + self.epoch_offset) - 1, 0)
        self.pace = Pace(self.params.get("steps"), epochs_after, self.clock)

    def on_train_batch_begin(self, step, logs=None):
        self.pace.batch_begin()
        super().on_train_batch_begin(step, logs)

    def on_train_batch_end(self, step, logs=None):
        logs = dict(logs or {})
        self.pace.batch_end(int(logs.get("batch_size", 1)))
        super().on_train_batch_end(step, {**logs, **self.pace.figures()})

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {**(logs or {}), **(self.pace.figures() if self.pace else {})})
