"""OptimizerStepLR: steps the learning-rate schedule once per optimizer step, not once per batch.

hapi adds its own ``paddle.callbacks.LRScheduler`` to every ``fit`` that
has none; it steps the schedule after every batch, so with
``accumulate_grad_batches=K`` a schedule sized in optimizer steps would
run K times too fast. This subclass takes its place (hapi adds its own only
when no ``LRScheduler`` instance is in the list) and steps only after the
batches that stepped the optimizer. With K = 1 it behaves as hapi's.
"""

from __future__ import annotations

from paddle.callbacks import LRScheduler

from ..paddle_compat import accumulate_of, lr_scheduler_of
from ..training.accumulation import optimizer_stepped


class OptimizerStepLR(LRScheduler):
    """hapi's per-batch ``LRScheduler`` callback, counting optimizer steps under gradient accumulation.

    Attributes:
        steps: optimizer steps taken in this process's ``fit`` calls.
    """

    def __init__(self) -> None:
        super().__init__(by_step=True, by_epoch=False)
        self.steps = 0

    def on_train_batch_end(self, step, logs=None):
        batches = (self.params or {}).get("steps")
        if not optimizer_stepped(step, accumulate_of(self.model), batches):
            return
        self.steps += 1
        schedule = lr_scheduler_of(self.model)
        if schedule is not None:
            schedule.step()
