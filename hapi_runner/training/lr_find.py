"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's and Lightning's ``lr_find``).

The rate grows exponentially from ``start_lr`` to ``end_lr`` over at most
one epoch of ``paddle.Model.fit``, one step per batch, and the loss of each
batch is recorded and smoothed. The sweep ends early when the smoothed loss
exceeds ``diverge`` times its lowest value, or when a loss is NaN or
infinite (a sweep's last rates are meant to break the network: that ends
the sweep, never the program). Two rates are suggested: ``steepest``, where
the smoothed loss falls fastest against log(rate), and ``valley`` (the one
``--lr auto`` uses), the middle of the longest stretch over which the loss
keeps falling, from where a tenth of its drop is made. Afterwards the weights, the optimizer and the random state
are exactly as before (:class:`~hapi_runner.training.snapshot.TrainingSnapshot`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..config.train_config import AUTO_LR, DEFAULT_LR
from ..errors import HapiRunnerError, UsageError
from ..runfolder.layout import RunPaths
from .log_values import scalar
from ..runfolder.atomic import atomic_write_bytes, write_json
from .distributed import say

MIN_POINTS = 5  # fewer recorded steps say nothing about the curve's shape


@dataclass
class LRFinding:
    """The result of a sweep: the rates tried, their losses, and the suggestions.

    Attributes:
        lrs, losses, smoothed: one entry per recorded step (finite losses only).
        steepest: the rate where the smoothed loss falls fastest, or None.
        valley: the middle of the longest falling stretch, or None.
        stop_reason: why the sweep ended (its last rate, divergence, a NaN loss).
        steps: the steps the sweep ran; seconds: how long it took.
    """

    lrs: List[float]
    losses: List[float]
    smoothed: List[float]
    steepest: Optional[float]
    valley: Optional[float]
    stop_reason: str
    steps: int
    seconds: float
    start_lr: float
    end_lr: float

    @property
    def suggestion(self) -> Optional[float]:
        """The rate ``--lr auto`` takes: the valley, else the steepest descent."""
        return self.valley if self.valley is not None else self.steepest

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "suggestion": self.suggestion}

    def summary(self) -> str:
        """One line: both suggestions and why the sweep ended."""
        if self.suggestion is None:
            return f"no rate suggested: {self.stop_reason} after {self.steps} steps (at least {MIN_POINTS} are needed)"
        return (f"suggested learning rate {_fmt(self.suggestion)} (valley; used by --lr auto), steepest descent at "
                f"{_fmt(self.steepest)}; the sweep ran {self.steps} steps from {_fmt(self.start_lr)} and ended: "
                f"{self.stop_reason}")

    def save(self, folder: str) -> Tuple[str, str]:
        """Writes ``lr_find.json`` and ``lr_find.png`` into ``folder`` (atomically); returns their paths."""
        from ..report.figures import lr_find_png

        paths = RunPaths(folder)
        json_path, png_path = paths.lr_find_json, paths.lr_find_plot
        write_json(json_path, self.to_dict())
        atomic_write_bytes(png_path, lr_find_png(self.lrs, self.losses, self.smoothed,
                                                 {"valley": self.valley, "steepest": self.steepest}))
        return json_path, png_path


def _fmt(value: Optional[float]) -> str:
    return "none" if value is None else f"{value:.3g}"


class _SweepOver(Exception):
    """Raised from a batch callback to end ``fit`` mid-epoch (hapi checks ``stop_training`` per epoch only)."""


def sweep_rate(step: int, steps: int, start_lr: float, end_lr: float) -> float:
    """The rate of ``step`` (0-based) in an exponential sweep of ``steps`` steps from ``start_lr`` to ``end_lr``."""
    return start_lr * (end_lr / start_lr) ** (step / max(1, steps - 1))


class LRSweep:
    """Sets the rate before each batch and records the loss after it; the state of one sweep.

    Args:
        schedule: the optimizer's ``ScaledLR``; its ``last_lr`` (what the
            optimizer reads) is set before each batch.
        steps: the batches the sweep lasts.
        start_lr, end_lr: the first and last rate.
        beta: the smoothing of the loss (an exponential moving average,
            bias-corrected). Defaults to None: ``1 - 5 / steps``, at most
            0.98 (fastai's), so a short sweep's curve does not lag its rates.
        diverge: the sweep stops when the smoothed loss exceeds this multiple
            of its lowest value; None never stops it early. Defaults to 4.0,
            fastai's and Lightning's.
        log_every: steps between progress lines; 0 prints none. Defaults to 10.
    """

    def __init__(self, schedule, steps: int, start_lr: float, end_lr: float, *, beta: Optional[float] = None,
                 diverge: Optional[float] = 4.0, log_every: int = 10):
        self.schedule, self.steps = schedule, steps
        self.start_lr, self.end_lr, self.diverge, self.log_every = start_lr, end_lr, diverge, log_every
        self.beta = min(0.98, max(0.0, 1 - 5 / steps)) if beta is None else beta
        self.lrs: List[float] = []
        self.losses: List[float] = []
        self.smoothed: List[float] = []
        self.stop_reason = "the last rate of the sweep was reached"
        self._average = 0.0

    def callback(self):
        """A ``paddle.callbacks.Callback`` driving this sweep."""
        from paddle.callbacks import Callback

        sweep = self

        class SweepCallback(Callback):
            def on_train_batch_begin(self, step, logs=None):
                sweep.schedule.last_lr = sweep_rate(step, sweep.steps, sweep.start_lr, sweep.end_lr)

            def on_train_batch_end(self, step, logs=None):
                sweep.record(step, scalar((logs or {}).get("loss")))

        return SweepCallback()

    def record(self, step: int, loss: Optional[float]) -> None:
        """Adds the loss of ``step``; raises :class:`_SweepOver` when the sweep is over."""
        lr = sweep_rate(step, self.steps, self.start_lr, self.end_lr)
        if loss is None or not math.isfinite(loss):
            self.stop_reason = f"the loss became {loss} at rate {lr:.3g}"
            raise _SweepOver
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (len(self.losses) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if self.log_every and (step + 1) % self.log_every == 0:
            say(f"hapi_runner: lr-find step {step + 1}/{self.steps}: rate {lr:.3g}, smoothed loss {smoothed:.4f}")
        if self.diverge is not None and len(self.smoothed) > 1 and smoothed > self.diverge * min(self.smoothed):
            self.stop_reason = f"the loss diverged at rate {lr:.3g} ({smoothed:.3g} > {self.diverge:g} x its lowest)"
            raise _SweepOver
        if step + 1 >= self.steps:
            raise _SweepOver


def steepest_rate(lrs: List[float], smoothed: List[float]) -> Optional[float]:
    """The rate where the smoothed loss falls fastest against log10(rate), skipping the noisy first tenth."""
    if len(smoothed) < MIN_POINTS:
        return None
    skip = max(1, len(smoothed) // 10)
    slope = np.gradient(np.asarray(smoothed), np.log10(np.asarray(lrs)))
    return float(lrs[skip + int(np.argmin(slope[skip:]))])


def valley_rate(lrs: List[float], smoothed: List[float]) -> Optional[float]:
    """The middle (in steps, so in log-rate) of the valley: the descent of the smoothed loss, its flat start left out.

    The valley is the span of the longest decreasing subsequence of the
    smoothed loss (the first tenth of the sweep skipped), which ignores the
    small bumps a noisy loss has. A sweep that starts at rates too low to
    train at adds a long flat stretch to it, and its middle would fall
    there; so the descent is taken to start where the loss has fallen by a
    tenth of the valley's drop. Its middle is past the flat start and well
    before the minimum, where the rate is already too high to train at.
    """
    if len(smoothed) < MIN_POINTS:
        return None
    skip = max(1, len(smoothed) // 10)  # the first steps are the noisiest, and the smoothing is young there
    lrs, smoothed = lrs[skip:], smoothed[skip:]
    n = len(smoothed)
    length = [1] * n  # length[i]: the longest decreasing subsequence ending at i
    start = list(range(n))  # where that subsequence begins
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    top = smoothed[start[end]]
    begin = next(i for i in range(start[end], end + 1) if smoothed[i] <= top - 0.1 * (top - smoothed[end]))
    return float(lrs[(begin + end) // 2])


def find_lr(runner, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, diverge: Optional[float] = 4.0,
            log_every: int = 10) -> LRFinding:
    """Runs the range test on ``runner``'s network, data and optimizer, then puts them back as they were.

    Args:
        runner: a built :class:`~hapi_runner.training.runner.Runner`.
        start_lr: the first rate. Defaults to 1e-7.
        end_lr: the last rate. Defaults to 10.0.
        steps: the batches of the sweep, capped at one epoch. Defaults to 100 (fastai's and Lightning's).
        diverge: stop once the smoothed loss passes this multiple of its lowest; None: never. Defaults to 4.0.
        log_every: steps between progress lines; 0 prints none. Defaults to 10.

    Returns:
        The :class:`LRFinding`; nothing is written (see :meth:`LRFinding.save`).

    Raises:
        UsageError: a rate or the step count is out of range.
    """
    from .snapshot import TrainingSnapshot

    check_sweep(start_lr, end_lr, steps)
    steps = min(steps, len(runner.train_loader))
    sweep = LRSweep(runner.lr, steps, start_lr, end_lr, diverge=diverge, log_every=log_every)
    say(f"hapi_runner: lr-find: {steps} steps, rate from {start_lr:g} to {end_lr:g}, "
        f"ending early if the loss {'diverges' if diverge else 'is NaN'}; the weights are put back afterwards")
    snapshot = TrainingSnapshot(runner)
    started = time.perf_counter()
    try:
        runner.model.fit(runner.train_loader, epochs=1, verbose=0, callbacks=[sweep.callback(), _held_schedule()],
                         accumulate_grad_batches=runner.config.accumulate_grad_batches)
    except _SweepOver:
        pass
    finally:
        snapshot.restore()
    return LRFinding(sweep.lrs, sweep.losses, sweep.smoothed, steepest_rate(sweep.lrs, sweep.smoothed),
                     valley_rate(sweep.lrs, sweep.smoothed), sweep.stop_reason, len(sweep.losses),
                     time.perf_counter() - started, start_lr, end_lr)


def _held_schedule():
    """hapi's LRScheduler callback, doing nothing: in the sweep the rate is set per batch, never stepped."""
    from paddle.callbacks import LRScheduler

    class HeldSchedule(LRScheduler):
        def on_train_batch_end(self, step, logs=None):
            pass

        def on_epoch_end(self, epoch, logs=None):
            pass

    return HeldSchedule(by_step=False, by_epoch=False)


def check_sweep(start_lr: Any, end_lr: Any, steps: Any) -> None:
    """UsageError unless ``0 < start_lr < end_lr`` and ``steps`` is an integer >= MIN_POINTS."""
    from ..config.checks import check_int, check_number

    check_number("start_lr", start_lr, low=0.0, low_open=True)
    check_number("end_lr", end_lr, low=0.0, low_open=True)
    if end_lr <= start_lr:
        raise UsageError(f"end_lr ({end_lr:g}) must be above start_lr ({start_lr:g}): the sweep climbs from one to the other.")
    check_int("steps", steps, minimum=MIN_POINTS)


def apply_auto_lr(runner) -> Dict[str, Any]:
    """``--lr auto``: runs the sweep, sets the suggested rate on ``runner`` (config and schedule); returns the record.

    Raises:
        HapiRunnerError: the sweep recorded too few steps to suggest a rate.
    """
    finding = find_lr(runner)
    if finding.suggestion is None:
        raise HapiRunnerError(f"--lr auto: {finding.summary()}; pass --lr VALUE, or train on more images "
                              f"(or a smaller --batch-size) so that an epoch has more steps.")
    say(f"hapi_runner: lr-find: {finding.summary()}")
    runner.reschedule(lr=finding.suggestion)
    runner.lr_finding = finding
    return {"lr": finding.suggestion, "valley": finding.valley, "steepest": finding.steepest,
            "stop_reason": finding.stop_reason, "steps": finding.steps}


def provisional_lr(config) -> Tuple[Any, bool]:
    """``(config to build with, whether --lr auto asked for a sweep)``: ``auto`` becomes the field's default until the sweep."""
    if config.lr != AUTO_LR:
        return config, False
    return config.replace(lr=DEFAULT_LR), True
