"""NanGuard: ends training at the first batch whose loss is NaN or infinite."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from ..errors import NonFiniteLossError
from ..training.log_values import scalar
from .base import RunCallback


class NanGuard(RunCallback):
    """Raises :class:`NonFiniteLossError` as soon as a training batch's loss is NaN or ±inf.

    It raises rather than asking hapi to stop, because hapi looks at
    ``stop_training`` only after each epoch: the rest of the epoch would run
    on broken weights and an epoch-end checkpoint could save them. Raising
    from the batch means no later hook runs, so the last checkpoint written
    stays the last good one. Put it before every callback that keeps state
    or writes files, so none of them acts on the broken batch. The Runner
    puts only :class:`LossMean` and the progress logger before it: the
    first adds the batch to a running mean that is never written (the
    raise ends the epoch before its ``on_epoch_end``), the second prints
    the non-finite loss, which is worth seeing.

    Attributes:
        reason: ``{'epoch', 'step', 'loss'}`` of the failing batch (the run's
            1-based epoch, the 1-based batch within it, the loss as a float),
            set before raising; None otherwise.

    Raises:
        NonFiniteLossError: from ``on_train_batch_end``, with a one-line
            message for the user.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason: Optional[Dict[str, Any]] = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.reason = None

    def on_train_batch_end(self, step, logs=None):
        bad = _first_non_finite(_losses((logs or {}).get("loss")))
        if bad is None:
            return
        self.reason = {"epoch": self.epoch, "step": step + 1, "loss": bad}
        raise NonFiniteLossError(
            f"loss became {bad} at epoch {self.epoch}, step {step + 1}; the last checkpoint (if any) is intact; "
            f"lower --lr or check the data."
        )


def _losses(value) -> List[float]:
    """hapi logs one value per loss, as a list; a bare number is one loss."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in (scalar(x) for x in values) if v is not None]


def _first_non_finite(values: List[float]) -> Optional[float]:
    return next((v for v in values if not math.isfinite(v)), None)
