"""ReduceLROnPlateau: lowers the learning rate, constant or scheduled, when the watched metric stalls."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from ..config.checks import check_number
from ..errors import UsageError
from ..paddle_compat import scaled_lr_of
from ..training.log_values import fmt_value
from .base import MonitorCallback, check_epochs

log = logging.getLogger("hapi_runner")


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by ``factor`` when the monitored metric has not improved for ``patience`` epochs.

    Unlike ``paddle.callbacks.ReduceLROnPlateau``, which does nothing when the
    optimizer's rate is an LRScheduler, this works for a constant rate and
    for any schedule (cosine, step, warm-up...): it lowers the ``scale`` of
    the :class:`hapi_runner.training.optim.ScaledLR` that ``build_optimizer`` puts in
    front of every rate (an optimizer built elsewhere gets one wrapped
    around its rate at the start of ``fit``). A schedule keeps its shape,
    only lower. The scale is part of the optimizer state, so it is saved
    with the ``.pdopt`` checkpoint and restored with it.

    Patience and cooldown are counted in epochs, not evaluations. After a
    reduction at epoch R, the next can come at epoch R + cooldown +
    patience at the earliest; any improvement restarts the count.

    Args:
        monitor: the metric to watch (see :class:`MonitorCallback`).
            Defaults to ``loss`` (the evaluation loss).
        mode: ``max`` or ``min``. Defaults to the mode table (losses
            ``min``, accuracies ``max``); other metrics need it.
        factor: the multiplier, 0 < factor < 1. Defaults to 0.1.
        patience: epochs without improvement before a reduction.
            Defaults to 2.
        min_delta: the smallest change that counts as an improvement.
            Defaults to 1e-4.
        cooldown: epochs after a reduction before the count starts again.
            Defaults to 0.
        min_lr: the reductions never take the rate below this; a schedule
            that goes lower by itself is followed. Defaults to 0.0.

    Attributes:
        reductions: one dict per reduction of this run: ``epoch``,
            ``lr_before``, ``lr_after``, ``scale``.
        last_reduced_epoch: the run's epoch of the last reduction, or None.

    Raises:
        UsageError: an argument outside its allowed range, a monitor without
            a known mode, a model without an optimizer, or (during fit) a
            monitor missing from the logs.
    """

    def __init__(self, monitor: str = "loss", *, mode: Optional[str] = None, factor: float = 0.1, patience: int = 2,
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__(monitor, mode, min_delta, None)
        self.factor = float(check_number("factor", factor, 0, 1, low_open=True, high_open=True))
        self.patience = check_epochs("patience", patience)
        self.cooldown = check_epochs("cooldown", cooldown)
        self.min_lr = float(check_number("min_lr", min_lr, 0))
        self._lr = None
        self.count_from = 0
        self.last_reduced_epoch: Optional[int] = None
        self.reductions: List[Dict[str, Any]] = []

    # -- state -----------------------------------------------------------
    def reset(self) -> None:
        """Forgets the best value and the reductions; counting starts where this fit starts."""
        super().reset()
        self.count_from = self.epoch_offset
        self.last_reduced_epoch = None
        self.reductions = []

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "count_from": self.count_from, "last_reduced_epoch": self.last_reduced_epoch,
                "reductions": [dict(r) for r in self.reductions]}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        if not super().load_state_dict(state):
            return False  # another metric: reset() starts the count afresh when the fit begins
        self.count_from = int(state.get("count_from", self.count_from))
        self.last_reduced_epoch = state.get("last_reduced_epoch")
        self.reductions = [dict(r) for r in state.get("reductions", [])]
        return True

    @property
    def wait(self) -> int:
        """Epochs counted towards ``patience``: since the best, the end of the cooldown, or the start."""
        reference = self.best_epoch if self.best_epoch is not None else self.count_from
        if self.last_reduced_epoch is not None:
            reference = max(reference, self.last_reduced_epoch + self.cooldown)
        return max(0, self.epoch - reference)

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._lr = scaled_lr_of(self.model)
        if self._lr is None:
            raise UsageError("ReduceLROnPlateau needs a model prepared with an optimizer; pass one to Model.prepare().")

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        if self.update(value):
            return
        if self.wait >= self.patience:
            self._reduce()

    # -- helpers ---------------------------------------------------------
    def _reduce(self) -> None:
        lr, waited = self._lr, self.wait
        # Restart the count even when nothing can be lowered, like a reduction would.
        self.last_reduced_epoch = self.epoch
        if lr.inner_lr * lr.scale <= self.min_lr:
            log.debug("ReduceLROnPlateau: the learning rate is at min_lr %g already.", self.min_lr)
            return
        before = lr.last_lr
        lr.set_scale(lr.scale * self.factor, self.min_lr)
        self.reductions.append({"epoch": self.epoch, "lr_before": before, "lr_after": lr.last_lr, "scale": lr.scale})
        log.info("ReduceLROnPlateau: %s has not improved on %s for %d epochs; learning rate %.4g -> %.4g "
                 "(scale %.4g) after epoch %d.", self.monitor, fmt_value(self.best), waited, before, lr.last_lr,
                 lr.scale, self.epoch)
