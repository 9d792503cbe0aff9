"""Optimizers and learning-rate schedules from a TrainConfig.

hapi's built-in ``LRScheduler`` callback steps a scheduler after every batch,
so every schedule here is expressed in steps (epochs x steps per epoch).
Every optimizer gets its rate through a :class:`ScaledLR`, so callbacks such
as ``ReduceLROnPlateau`` can lower a constant rate and a schedule alike, and
the change travels with the optimizer state (``.pdopt``).

Importing this module imports Paddle (ScaledLR subclasses its LRScheduler),
so import it after the thread count is set, as the Runner does.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Tuple

from paddle.optimizer.lr import LRScheduler, ReduceOnPlateau

from ..config.checks import check_number, is_number
from ..errors import UsageError


class ScaledLR(LRScheduler):
    """A learning rate ``schedule`` multiplied by ``scale``: the knob ReduceLROnPlateau turns.

    Paddle's optimizers take a float or an LRScheduler, and a float cannot be
    changed through a scheduler while a scheduler cannot be multiplied from
    outside; this wrapper is both. ``step()`` advances the inner schedule, so
    hapi's per-batch ``LRScheduler`` callback drives it as before.

    The rate is ``schedule * scale``, but the scaling never takes it below
    ``min_lr``; where the schedule itself is below ``min_lr`` (the start of a
    warm-up, the end of a cosine) the schedule's value is used.

    Args:
        schedule: the inner learning rate, a float or an LRScheduler (cosine,
            step, warm-up...). Paddle's ``ReduceOnPlateau`` is refused: it
            needs a metric on every ``step``.
        scale: the multiplier. Defaults to 1.0.
        min_lr: the floor the scaling respects. Defaults to 0.0.
        verbose: print each change, like Paddle's schedulers. Defaults to False.

    Attributes:
        inner: the wrapped float or LRScheduler.
        scale, min_lr: as above; change them with :meth:`set_scale`.
    """

    def __init__(self, schedule, scale: float = 1.0, min_lr: float = 0.0, verbose: bool = False):
        if isinstance(schedule, ReduceOnPlateau):
            raise UsageError(
                "ScaledLR cannot wrap paddle.optimizer.lr.ReduceOnPlateau (it needs a metric on every step); "
                "use hapi_runner.callbacks.reduce_lr.ReduceLROnPlateau instead."
            )
        if not (is_number(schedule) or isinstance(schedule, LRScheduler)):
            raise UsageError(f"schedule must be a float or a paddle.optimizer.lr.LRScheduler, got {schedule!r}.")
        _check_scale(scale, min_lr)
        self.inner = schedule if isinstance(schedule, LRScheduler) else float(schedule)
        self.scale = float(scale)
        self.min_lr = float(min_lr)
        # LRScheduler.__init__ calls step() once to compute the first rate; the
        # inner schedule has already taken that step, so it must not take it twice.
        self._inner_ready = False
        base = self.inner.base_lr if isinstance(self.inner, LRScheduler) else self.inner
        last_epoch = self.inner.last_epoch - 1 if isinstance(self.inner, LRScheduler) else -1
        super().__init__(base, last_epoch=last_epoch, verbose=verbose)
        self._inner_ready = True

    @property
    def inner_lr(self) -> float:
        """The inner schedule's current rate, before scaling."""
        return self.inner() if isinstance(self.inner, LRScheduler) else self.inner

    @property
    def inner_type(self) -> str:
        """The inner schedule's class name, or ``constant`` for a float."""
        return type(self.inner).__name__ if isinstance(self.inner, LRScheduler) else "constant"

    def get_lr(self) -> float:
        inner = self.inner_lr
        return max(inner * self.scale, min(self.min_lr, inner))

    def step(self, epoch=None) -> None:
        if self._inner_ready and isinstance(self.inner, LRScheduler):
            self.inner.step(epoch)
        super().step(epoch)

    def set_scale(self, scale: float, min_lr: Optional[float] = None) -> None:
        """Sets ``scale`` (and ``min_lr`` when given); the new rate applies from the next optimizer step."""
        min_lr = self.min_lr if min_lr is None else min_lr
        _check_scale(scale, min_lr)
        self.scale, self.min_lr = float(scale), float(min_lr)
        # The optimizer reads last_lr; recomputing it now avoids a step at the old rate.
        self.last_lr = self.get_lr()

    def set_schedule(self, schedule) -> None:
        """Replaces the inner rate (a float or an LRScheduler), at its start; the scale is kept.

        The optimizer keeps this object, so its accumulators (and their names)
        stay as they are: ``--lr auto`` and ``--time-budget`` change the rate
        and the schedule's length of a Runner already built this way.
        """
        if not (is_number(schedule) or isinstance(schedule, LRScheduler)) or isinstance(schedule, ReduceOnPlateau):
            raise UsageError(f"schedule must be a float or a paddle.optimizer.lr.LRScheduler, got {schedule!r}.")
        self.inner = schedule if isinstance(schedule, LRScheduler) else float(schedule)
        self.base_lr = self.inner.base_lr if isinstance(self.inner, LRScheduler) else self.inner
        self.last_epoch = self.inner.last_epoch if isinstance(self.inner, LRScheduler) else 0
        self.last_lr = self.get_lr()

    # -- state, saved by the optimizer into .pdopt ---------------------------
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state.update(scale=self.scale, min_lr=self.min_lr, inner_type=self.inner_type)
        if isinstance(self.inner, LRScheduler):
            state["inner"] = self.inner.state_dict()
        return state

    def set_state_dict(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        if "scale" not in state:
            # An optimizer state saved before rates were wrapped: the inner schedule's own.
            if isinstance(self.inner, LRScheduler):
                _load_inner(self.inner, state)
                self.last_epoch = self.inner.last_epoch
            self.set_scale(1.0)
            return
        saved = state.get("inner_type", self.inner_type)
        if saved != self.inner_type:
            # Loading one schedule's position into another would silently give wrong rates.
            raise UsageError(f"the optimizer state was saved with learning-rate schedule {saved}, this run uses "
                             f"{self.inner_type}; resume with the same --lr-schedule or start a new run.")
        self.last_epoch = int(_plain(state["last_epoch"]))
        self.scale = float(_plain(state["scale"]))
        self.min_lr = float(_plain(state.get("min_lr", 0.0)))
        if isinstance(self.inner, LRScheduler) and "inner" in state:
            _load_inner(self.inner, state["inner"])
        self.last_lr = self.get_lr()

    set_dict = set_state_dict


def _load_inner(schedule: LRScheduler, state: Dict[str, Any]) -> None:
    # LinearWarmup keeps its inner schedule's state under an extra key, which its
    # base class then reports as "unused values in state_dict": a false alarm on every resume.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
        schedule.set_state_dict(state)


def _plain(value):
    """A number as saved by paddle.save may come back as a 0-d array or Tensor."""
    return value.item() if hasattr(value, "item") else value


def _check_scale(scale, min_lr) -> None:
    for name, value, ok in (("scale", scale, lambda v: v > 0), ("min_lr", min_lr, lambda v: v >= 0)):
        if not is_number(value) or not ok(value):
            allowed = "a number > 0" if name == "scale" else "a number >= 0"
            raise UsageError(f"{name} must be {allowed}, got {value!r}.")


def build_scheduler(config, steps_per_epoch: int):
    """The learning rate: a float for ``constant`` without warm-up, else a ``paddle.optimizer.lr.LRScheduler``.

    Args:
        config: a TrainConfig (uses ``lr``, ``lr_schedule``, ``lr_step_epochs``,
            ``lr_gamma``, ``warmup_epochs``, ``epochs``).
        steps_per_epoch: optimizer steps per epoch on this process (batches, or fewer with gradient accumulation).
    """
    from paddle.optimizer import lr as lrs

    total = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch
    if config.lr_schedule == "constant":
        schedule = config.lr
    elif config.lr_schedule == "cosine":
        schedule = lrs.CosineAnnealingDecay(config.lr, T_max=max(1, total - warmup))
    elif config.lr_schedule == "step":
        schedule = lrs.StepDecay(config.lr, step_size=config.lr_step_epochs[0] * steps_per_epoch, gamma=config.lr_gamma)
    else:  # multistep
        milestones = [e * steps_per_epoch for e in config.lr_step_epochs]
        schedule = lrs.MultiStepDecay(config.lr, milestones=milestones, gamma=config.lr_gamma)
    if warmup:
        schedule = lrs.LinearWarmup(schedule, warmup_steps=warmup, start_lr=0.0, end_lr=config.lr)
    return schedule


def build_grad_clip(norm: Optional[float]):
    """``paddle.nn.ClipGradByGlobalNorm(norm)`` for an optimizer's ``grad_clip``; None for no clipping.

    Clipping scales every gradient by ``norm / max(norm, global_norm)``, the
    global norm taken over all parameters together, before weight decay is
    added. Under gradient accumulation it applies to the accumulated (summed)
    gradient, once per optimizer step.

    Args:
        norm: the largest global norm, > 0; None or 0 turns clipping off.
    """
    import paddle

    if norm is None or (is_number(norm) and norm == 0):
        return None
    return paddle.nn.ClipGradByGlobalNorm(float(check_number("clip_grad", norm, 0.0, low_open=True)))


def build_optimizer(config, parameters, steps_per_epoch: int, grad_clip=None, no_decay=()) -> Tuple[object, object]:
    """Builds the optimizer named by ``config.optimizer``.

    ``momentum`` (the default, as seed 002) and ``sgd`` apply
    ``weight_decay`` as ``paddle.regularizer.L2Decay``; ``adam`` adds it to
    the gradient the same way; ``adamw`` decouples it.

    Args:
        config: a TrainConfig.
        parameters: the network's parameters.
        steps_per_epoch: optimizer steps per epoch (with gradient accumulation,
            ``accumulation.optimizer_steps_per_epoch(batches, K)``).
        grad_clip: passed to the optimizer, e.g. :func:`build_grad_clip`'s. Defaults to None.
        no_decay: parameters weight decay leaves alone (``decay.decay_exempt``). Defaults to none.

    Returns:
        ``(optimizer, learning_rate)``, the latter the :class:`ScaledLR`
        (scale 1) wrapping the float or schedule of :func:`build_scheduler`.
    """
    import paddle
    from paddle.regularizer import L2Decay

    lr = ScaledLR(build_scheduler(config, steps_per_epoch))
    from .decay import exempt_from_decay

    exempt = exempt_from_decay(no_decay)
    decay = L2Decay(config.weight_decay) if config.weight_decay else None
    name = config.optimizer
    if name == "momentum":
        opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=config.momentum, parameters=parameters, weight_decay=decay,
                                        grad_clip=grad_clip)
    elif name == "sgd":
        opt = paddle.optimizer.SGD(learning_rate=lr, parameters=parameters, weight_decay=decay, grad_clip=grad_clip)
    elif name == "adam":
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=parameters, weight_decay=decay, grad_clip=grad_clip)
    else:
        opt = paddle.optimizer.AdamW(learning_rate=lr, parameters=parameters, weight_decay=config.weight_decay,
                                     grad_clip=grad_clip, apply_decay_param_fun=lambda name: name not in exempt)
    return opt, lr
