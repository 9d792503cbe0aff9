"""RunProgress: hapi's progress logger, counting the run's epochs rather than this ``fit`` call's."""

from __future__ import annotations

from paddle.callbacks import ProgBarLogger


class RunProgress(ProgBarLogger):
    """``paddle.callbacks.ProgBarLogger`` that prints ``Epoch 6/7`` for the sixth epoch of a 7-epoch run resumed after 5.

    hapi numbers the epochs of every ``fit`` from 1 and counts only that
    call's; a resumed run would print ``Epoch 1/2``. ``epoch_offset`` (set
    by the Runner, as on every run callback) shifts both numbers. All the
    printing stays hapi's.

    Args:
        log_freq: print every this many batches. Defaults to 1.
        verbose: 0 silent, 1 a progress bar, 2 one line per print.
            Defaults to 2.

    Attributes:
        epoch_offset: epochs finished before this ``fit``. Defaults to 0.
    """

    epoch_offset = 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.epochs = self.epochs + self.epoch_offset

    def on_epoch_begin(self, epoch=None, logs=None):
        super().on_epoch_begin(epoch + self.epoch_offset, logs)
