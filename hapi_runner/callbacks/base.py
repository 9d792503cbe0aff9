"""What hapi_runner's callbacks share: absolute epochs, one restore contract for their state, and metric watching.

``paddle.Model.fit`` numbers epochs from 0 on every call, also when a run is
resumed; ``epoch_offset`` (set by the Runner on resume) turns hapi's epoch
into the run's. ``MonitorCallback`` is the one place that knows what "better"
means for a metric: checkpointing, early stopping and LR-on-plateau use it.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional

from paddle.callbacks import Callback

from ..config.checks import check_int, check_number, check_optional_number
from ..errors import UsageError
from ..training.log_values import metric_logs
from ..config.monitor import split_monitor

log = logging.getLogger("hapi_runner")

# Explicit, never guessed from substrings: a metric not in this table needs `mode`.
MODE_TABLE = {"loss": "min", "acc": "max", "acc_top1": "max", "acc_top5": "max"}


class RunCallback(Callback):
    """A Callback that knows the run's epoch and can save and restore its state.

    The restore contract, the same for every stateful callback:

    * :meth:`state_dict` returns what a checkpoint keeps (JSON values);
    * :meth:`load_state_dict` puts it back and marks the callback
      ``restored``; a subclass calls ``super().load_state_dict(state)`` and
      restores its own fields only when that returns True (False: the state
      does not apply here, nothing was restored);
    * :meth:`reset` forgets the state of an earlier run; ``on_train_begin``
      calls it, unless the callback was restored since the last fit, and
      clears ``restored``: each ``fit`` is a fresh run unless a checkpoint
      was loaded before it. ``__init__`` never calls it.

    Attributes:
        epoch_offset: epochs finished before this ``fit`` call (a resumed
            run); set by the Runner. Defaults to 0.
        epoch: the run's 1-based number of the epoch in progress or just
            finished; 0 before training.
        restored: True between a :meth:`load_state_dict` that applied and the
            next ``on_train_begin``.
    """

    epoch_offset = 0

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.restored = False

    def on_train_begin(self, logs=None):
        if not self.restored:
            self.reset()
        self.restored = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1 + self.epoch_offset

    def state_dict(self) -> Dict[str, Any]:
        """State to keep in a checkpoint; JSON-serialisable. Defaults to none."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        """Restores what :meth:`state_dict` returned; True, as the base has nothing that could not apply."""
        self.restored = True
        return True

    def reset(self) -> None:
        """Forgets the state of an earlier run; nothing in the base."""


def check_epochs(name: str, value: Any) -> int:
    """``value`` if it is an integer >= 0 (a count of epochs), else UsageError."""
    return check_int(name, value, 0, unit="epochs")


def resolve_mode(monitor: str, mode: Optional[str]) -> str:
    """``mode`` if given, else the table's entry for the metric; an unknown metric without mode is an error."""
    if mode is not None:
        if mode not in ("min", "max"):
            raise UsageError(f"mode must be 'min' or 'max', got {mode!r}.")
        return mode
    _, name = split_monitor(monitor)
    if name not in MODE_TABLE:
        raise UsageError(
            f"cannot tell whether '{monitor}' should go up or down; pass mode='min' or mode='max' "
            f"(known without it: {', '.join(sorted(MODE_TABLE))})."
        )
    return MODE_TABLE[name]


class MonitorCallback(RunCallback):
    """Watches one metric and knows when it improves.

    Args:
        monitor: the metric: an evaluation metric (``acc_top1``, ``loss``,
            ``acc_top5``, optionally written ``eval_acc_top1``) or a training
            one (``train_loss``, ``train_acc_top1``). Defaults to ``acc_top1``.
        mode: ``max`` or ``min``. Defaults to the table: losses ``min``,
            accuracies ``max``; other metrics need it.
        min_delta: the smallest change that counts as an improvement.
            Defaults to 0.
        baseline: a value the metric has to beat before anything counts as
            an improvement. Defaults to None.

    Attributes:
        best: the best value so far (or the baseline), None before any.
        best_epoch: the run's epoch of ``best``, None before any.
    """

    def __init__(self, monitor: str = "acc_top1", mode: Optional[str] = None, min_delta: float = 0.0,
                 baseline: Optional[float] = None):
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise UsageError(f"monitor must be a metric name such as 'acc_top1' or 'loss', got {monitor!r}.")
        self.min_delta = float(check_number("min_delta", min_delta, 0))
        self.baseline = check_optional_number("baseline", baseline)
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.source, self.metric = split_monitor(monitor)
        self.best: Optional[float] = None if baseline is None else float(baseline)
        self.best_epoch: Optional[int] = None

    # -- state -----------------------------------------------------------
    def reset(self) -> None:
        """Forgets the best value: a new run starts from the baseline."""
        super().reset()
        self.best = None if self.baseline is None else float(self.baseline)
        self.best_epoch = None

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "monitor": self.monitor, "mode": self.mode}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        """Restores the best value; False (and nothing restored) if the state watched another metric."""
        if not self.same_monitor(state):
            return False
        super().load_state_dict(state)
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        return True

    def same_monitor(self, state: Dict[str, Any]) -> bool:
        """False (with a warning) when saved state watched another metric, so its best value means nothing here."""
        saved = (state.get("monitor", self.monitor), state.get("mode", self.mode))
        if saved == (self.monitor, self.mode):
            return True
        log.warning("%s: the saved state watched %s (%s), this run watches %s (%s); starting afresh.",
                    type(self).__name__, saved[0], saved[1], self.monitor, self.mode)
        return False

    # -- comparisons -----------------------------------------------------
    def is_improvement(self, current: float, reference: Optional[float] = None) -> bool:
        """True if ``current`` beats ``reference`` (default: the best) by more than ``min_delta``."""
        reference = self.best if reference is None else reference
        if current is None or not math.isfinite(current):
            return False
        if reference is None:
            return True
        if self.mode == "max":
            return current > reference + self.min_delta
        return current < reference - self.min_delta

    def update(self, current: float) -> bool:
        """Records ``current`` for this epoch; True if it is a new best."""
        if self.is_improvement(current):
            self.best, self.best_epoch = float(current), self.epoch
            return True
        return False

    def monitor_value(self, logs: Optional[Dict[str, Any]]) -> Optional[float]:
        """The watched metric in ``logs``; a missing one is an error listing what exists."""
        metrics = metric_logs(logs)
        if self.metric not in metrics:
            raise UsageError(
                f"monitor '{self.monitor}' is not among the {self.source} metrics: {', '.join(sorted(metrics)) or 'none'}; "
                f"pass one of them."
            )
        return metrics[self.metric]

    def check_metric_names(self, names: List[str]) -> None:
        """Fails early if hapi's list of metric names does not hold the watched one."""
        if names and self.metric not in names:
            raise UsageError(
                f"monitor '{self.monitor}' is not among the {self.source} metrics: {', '.join(names)}; pass one of them."
            )

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # a fresh fit() starts over; a restored one (resume) keeps its best value
        self.check_metric_names(list((self.params or {}).get("metrics") or []))

    def on_epoch_end(self, epoch, logs=None):
        if self.source == "train":
            self.on_monitor(self.monitor_value(logs), logs)

    def on_eval_end(self, logs=None):
        if self.source == "eval":
            self.on_monitor(self.monitor_value(logs), logs)

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        """Called once per epoch with the watched value; subclasses act here."""
