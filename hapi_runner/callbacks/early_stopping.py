"""EarlyStopping: ends training once the watched metric has stopped improving for ``patience`` epochs."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from ..config.checks import check_bool
from ..paddle_compat import clear_stop_request, request_stop
from ..training.log_values import fmt_value
from .base import MonitorCallback, check_epochs

log = logging.getLogger("hapi_runner")


class EarlyStopping(MonitorCallback):
    """Stops ``paddle.Model.fit`` when the monitored metric has not improved for ``patience`` epochs.

    Patience is counted in epochs of the run, not in evaluations: with
    ``eval_freq=2`` and ``patience=3``, training stops at the first
    evaluation at least 3 epochs after the best one. hapi looks at the stop
    request after each epoch and its evaluation, so the epoch that triggers
    it is the last one trained. A condition met at the last epoch of
    ``fit`` stops nothing and is not reported.

    Args:
        monitor: the metric to watch (see :class:`MonitorCallback`).
            Defaults to ``acc_top1`` (evaluation top-1 accuracy).
        mode: ``max`` or ``min``. Defaults to the mode table (losses
            ``min``, accuracies ``max``); other metrics need it.
        patience: epochs without improvement after which training stops;
            0 stops at the first evaluation that does not improve.
            Defaults to 5.
        min_delta: the smallest change that counts as an improvement.
            Defaults to 0.0.
        baseline: a value the metric has to beat; until it does, the epochs
            count as without improvement. Defaults to None.
        start_from_epoch: epochs at the start of the run that are ignored
            altogether (no best value, no patience), e.g. a warm-up.
            Defaults to 0.
        restore_best: keep a copy of the weights at each new best (in host
            memory) and put them back at the end of training if it stopped
            early or the last epoch was not the best. Defaults to False.

    Attributes:
        stopped_epoch: the run's epoch at which training was stopped, or
            None if it ran to the end.
        stop_reason: ``{'monitor', 'best', 'best_epoch', 'patience', 'epoch'}``
            when training was stopped, else None.
        restored_epoch: the epoch whose weights were restored, or None.

    Raises:
        UsageError: an argument outside its allowed range, a monitor without
            a known mode, or (during fit) a monitor missing from the logs.

    Example:
        >>> stopper = EarlyStopping(monitor="loss", patience=3, restore_best=True)
        >>> model.fit(train, eval_data, epochs=50, callbacks=[stopper])
        >>> stopper.stopped_early, stopper.stop_reason
    """

    def __init__(self, monitor: str = "acc_top1", *, mode: Optional[str] = None, patience: int = 5,
                 min_delta: float = 0.0, baseline: Optional[float] = None, start_from_epoch: int = 0,
                 restore_best: bool = False):
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience = check_epochs("patience", patience)
        self.start_from_epoch = check_epochs("start_from_epoch", start_from_epoch)
        self.restore_best = check_bool("restore_best", restore_best)
        self.count_from = self.start_from_epoch
        self._new_fit()

    # -- state -----------------------------------------------------------
    def reset(self) -> None:
        """Forgets the best value; counting starts after ``start_from_epoch`` (or where this fit starts)."""
        super().reset()
        self.count_from = max(self.start_from_epoch, self.epoch_offset)

    def _new_fit(self) -> None:
        # Per-fit results, never part of the saved state.
        self.stopped_epoch: Optional[int] = None
        self.stop_reason: Optional[Dict[str, Any]] = None
        self.restored_epoch: Optional[int] = None
        self._best_weights = None
        self._best_weights_epoch: Optional[int] = None
        self._evaluations = 0

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "count_from": self.count_from}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        if not super().load_state_dict(state):
            return False  # another metric: reset() starts the count afresh when the fit begins
        self.count_from = int(state.get("count_from", self.count_from))
        return True

    @property
    def stopped_early(self) -> bool:
        """True if this callback ended the last ``fit`` before its final epoch."""
        return self.stopped_epoch is not None

    @property
    def wait(self) -> int:
        """Epochs since the best one (or since counting started, before any)."""
        reference = self.best_epoch if self.best_epoch is not None else self.count_from
        return max(0, self.epoch - reference)

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._new_fit()

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        self._evaluations += 1
        if self.epoch <= self.start_from_epoch:
            return
        if self.update(value):
            if self.restore_best:
                self._keep_weights()
            return
        if self.wait >= self.patience and not _is_last_epoch(self):
            self._stop()

    def on_train_end(self, logs=None):
        if self.stopped_epoch is not None:
            # Leave the model able to run another fit().
            clear_stop_request(self.model)
        if self.source == "eval" and self._evaluations == 0:
            log.warning("EarlyStopping watched '%s' but fit() ran no evaluation; pass eval data to fit() "
                        "or watch a training metric such as 'train_loss'.", self.monitor)
        if self.restore_best:
            self._restore_weights()
        self._best_weights = None  # host memory the size of the model; not needed any more

    # -- helpers ---------------------------------------------------------
    def _stop(self) -> None:
        self.stopped_epoch = self.epoch
        self.stop_reason = {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
                            "patience": self.patience, "epoch": self.epoch}
        request_stop(self.model)
        best = "the baseline" if self.best_epoch is None else f"epoch {self.best_epoch}"
        log.info("EarlyStopping: %s has not improved on %s (%s) for %d epochs; stopping after epoch %d.",
                 self.monitor, fmt_value(self.best), best, self.wait, self.epoch)

    def _keep_weights(self) -> None:
        # numpy copies: the live tensors keep changing as training goes on.
        self._best_weights = {k: v.numpy().copy() for k, v in self.model.network.state_dict().items()}
        self._best_weights_epoch = self.epoch

    def _restore_weights(self) -> None:
        if self.best_epoch is None or self.best_epoch == self.epoch:
            return  # no best at all, or the final weights are the best ones
        if self._best_weights_epoch != self.best_epoch:
            log.warning("EarlyStopping: the best weights (epoch %d) were seen before this fit() call and are not "
                        "in memory; keeping the weights of epoch %d (a best checkpoint, if saved, has them).",
                        self.best_epoch, self.epoch)
            return
        self.model.network.set_state_dict(self._best_weights)
        self.restored_epoch = self.best_epoch
        log.info("EarlyStopping: restored the weights of epoch %d (%s %s).", self.best_epoch, self.monitor, fmt_value(self.best))


def _is_last_epoch(callback) -> bool:
    """True at the final epoch of this ``fit`` (hapi's ``params['epochs']``), where stopping changes nothing."""
    epochs = (callback.params or {}).get("epochs")
    return epochs is not None and callback.epoch >= callback.epoch_offset + epochs
