"""``--time-budget``: as many epochs as fit in a wall-clock time, with the schedule laid out over them.

The first training steps (after one warm-up step, which pays for memory
allocation and kernel selection) and a few evaluation batches are timed with
``paddle.Model.fit`` and ``evaluate``, then the weights, optimizer and
random state are put back
(:class:`~hapi_runner.training.snapshot.TrainingSnapshot`). The number of
epochs is what fits in the budget less a reserve for checkpoints, the
export and the report; the schedule (a cosine's length, a warm-up) is
rebuilt for that many epochs, so it reaches its end when training does. The
plan is printed before training and recorded in ``config.json``; a resumed
run reads its epochs from there and is not planned again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List

from ..config.checks import parse_duration
from ..errors import UsageError
from .distributed import say

RESERVE = 0.1  # the share of the budget kept for checkpoints, the export and the report
TIMED_STEPS = 5  # training steps timed after the warm-up step
TIMED_EVAL_BATCHES = 3

# The clock every measurement reads; a module attribute so a test can lay a made-up clock in its place.
clock: Callable[[], float] = time.perf_counter


@dataclass
class BudgetPlan:
    """What the budget allows, and the measurements it rests on (recorded in ``config.json``).

    Attributes:
        budget_s: the budget in seconds; spent_s: what measuring took.
        step_s: seconds per training step; steps_per_epoch: batches per epoch.
        eval_s: seconds of one evaluation of the eval set; eval_freq: epochs between evaluations.
        epochs: the epochs planned; planned_s: the time they should take.
    """

    budget_s: float
    spent_s: float
    step_s: float
    steps_per_epoch: int
    eval_s: float
    eval_freq: int
    epochs: int
    planned_s: float

    def describe(self) -> str:
        """The plan in one line, for the opening lines of the run."""
        return (f"time budget {_minutes(self.budget_s)}: a training step takes {self.step_s:.3g}s and an evaluation "
                f"{self.eval_s:.3g}s, so {self.epochs} epoch{'s' if self.epochs != 1 else ''} of {self.steps_per_epoch} "
                f"steps should take {_minutes(self.planned_s)} ({RESERVE:.0%} of the budget kept for checkpoints, "
                f"export and report); the learning-rate schedule spans "
                f"{'that epoch' if self.epochs == 1 else f'those {self.epochs} epochs'}")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def plan_epochs(budget_s: float, spent_s: float, step_s: float, steps_per_epoch: int, eval_s: float,
                eval_freq: int = 1) -> int:
    """The epochs that fit in ``budget_s``: at least 1, 0 when not even one does.

    An epoch costs its steps plus, every ``eval_freq`` epochs, an
    evaluation; one more evaluation is counted for the end of training (the
    report's), and :data:`RESERVE` of the budget is kept aside.
    """
    usable = budget_s * (1 - RESERVE) - spent_s - eval_s
    per_epoch = step_s * steps_per_epoch + eval_s / eval_freq
    if per_epoch <= 0:
        return 1
    return max(0, math.floor(usable / per_epoch))


class _Timed(Exception):
    """Ends the timing ``fit`` once enough steps are timed."""


def _step_times(runner, steps: int) -> List[float]:
    """Seconds of each of the first ``steps`` training batches (one ``fit``, ended by an exception)."""
    from paddle.callbacks import Callback

    times: List[float] = []

    class StepTimer(Callback):
        def on_train_batch_begin(self, step, logs=None):
            self.began = clock()

        def on_train_batch_end(self, step, logs=None):
            times.append(clock() - self.began)
            if len(times) >= steps:
                raise _Timed

    try:
        runner.model.fit(runner.train_loader, epochs=1, verbose=0, callbacks=[StepTimer()],
                         accumulate_grad_batches=runner.config.accumulate_grad_batches)
    except _Timed:
        pass
    return times


def measure(runner) -> Dict[str, float]:
    """``{"step_s", "eval_s", "spent_s"}``: a training step's and a whole evaluation's seconds; the weights are put back."""
    from .snapshot import TrainingSnapshot

    started = clock()
    batches = len(runner.train_loader)
    snapshot = TrainingSnapshot(runner)
    eval_batches = min(len(runner.eval_loader), TIMED_EVAL_BATCHES)
    try:
        times = _step_times(runner, min(batches, TIMED_STEPS + 1))
        began = clock()
        # evaluate's num_iters sets stop_training, which the restore clears: else fit would stop after an epoch.
        runner.model.evaluate(runner.eval_loader, verbose=0, num_iters=eval_batches)
        eval_s = (clock() - began) / eval_batches * len(runner.eval_loader)
    finally:
        snapshot.restore()
    timed = times[1:] or times  # the first step warms up; a one-batch epoch has nothing else
    return {"step_s": sum(timed) / len(timed), "eval_s": eval_s, "spent_s": clock() - started}


def apply_time_budget(runner) -> Dict[str, Any]:
    """Measures, sets ``epochs`` and the schedule on ``runner``, prints the plan; returns it for config.json.

    Raises:
        UsageError: not even one epoch fits in the budget.
    """
    cfg = runner.config
    budget = parse_duration("time_budget", cfg.time_budget)
    say(f"hapi_runner: time budget {cfg.time_budget}: timing {TIMED_STEPS} training steps and an evaluation")
    figures = measure(runner)
    batches = len(runner.train_loader)
    epochs = plan_epochs(budget, figures["spent_s"], figures["step_s"], batches, figures["eval_s"], cfg.eval_freq)
    epoch_s = figures["step_s"] * batches + figures["eval_s"] / cfg.eval_freq
    if epochs < 1:
        raise UsageError(f"--time-budget {cfg.time_budget}: one epoch takes about {_minutes(epoch_s)} here (and an "
                         f"evaluation {_minutes(figures['eval_s'])}), more than the budget less {RESERVE:.0%}; give at "
                         f"least {_minutes((epoch_s + figures['eval_s'] + figures['spent_s']) / (1 - RESERVE))}, or "
                         f"train on fewer or smaller images.")
    plan = BudgetPlan(budget, figures["spent_s"], figures["step_s"], batches, figures["eval_s"], cfg.eval_freq, epochs,
                      epochs * epoch_s + figures["eval_s"])
    if cfg.warmup_epochs >= epochs:
        say(f"hapi_runner: time budget: --warmup-epochs {cfg.warmup_epochs} would fill the {epochs} planned epochs; "
            f"warming up for {epochs - 1}")
    runner.reschedule(epochs=epochs, warmup_epochs=min(cfg.warmup_epochs, epochs - 1))
    say(f"hapi_runner: {plan.describe()}")
    return asdict(plan)
