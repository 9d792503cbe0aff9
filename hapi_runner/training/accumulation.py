"""When the optimizer steps under hapi's gradient accumulation, in one place.

``paddle.Model.fit(accumulate_grad_batches=K)`` calls ``train_batch`` with
``update`` true on every K-th batch of an epoch and on its last batch
(``(step + 1) % K == 0 or step + 1 == len(loader)``); the other batches
only add their gradients. hapi does not divide them by K: one optimizer
step applies the *sum* of the K batches' mean gradients. Callbacks that act
per optimizer step (the LR schedule, the weight EMA) use
:func:`optimizer_stepped`, and schedules are sized with
:func:`optimizer_steps_per_epoch` (the running fit's K is ``paddle_compat.accumulate_of``). This module imports nothing.
"""

from __future__ import annotations

from typing import Optional


def optimizer_stepped(step: int, accumulate: int, batches: Optional[int]) -> bool:
    """True if batch ``step`` (0-based, within the epoch) ended with an optimizer step.

    Args:
        step: hapi's batch index in the epoch.
        accumulate: K.
        batches: batches in the epoch (hapi's ``params['steps']``), or None when unknown.
    """
    return (step + 1) % accumulate == 0 or (batches is not None and step + 1 == batches)


def optimizer_steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps in an epoch of ``batches`` batches: ``ceil(batches / K)`` (the last group may be short)."""
    return -(-int(batches) // int(accumulate))
