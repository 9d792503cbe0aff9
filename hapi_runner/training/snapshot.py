"""`TrainingSnapshot`: the weights, optimizer and random state of a Runner, put back exactly after a trial run.

The LR finder and the time budget's measurement train a few real steps with
``paddle.Model.fit``; afterwards the run must start as if they never
happened. fastai and Lightning users report the failures this guards
against: weights left at a diverged rate, momentum buffers created by the
trial and kept, and a random stream moved on so the run is no longer the
one its seed names.
"""

from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np


def _copy_state(state: Dict[str, Any]) -> Dict[str, Any]:
    """A deep copy of a state dict whose tensors are numpy arrays (nested dicts kept)."""
    copied: Dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            copied[key] = _copy_state(value)
        elif hasattr(value, "numpy"):
            copied[key] = np.array(value.numpy(), copy=True)
        else:
            copied[key] = value
    return copied


class TrainingSnapshot:
    """What a trial training run changes, captured so :meth:`restore` undoes it.

    The optimizer's accumulators are created first (at their initial
    values), so the trial cannot leave new ones behind.

    Captured: every parameter and buffer of the network (BatchNorm's running
    statistics too), the optimizer's state (its accumulators and its
    learning-rate schedule), Paddle's, numpy's and Python's random states,
    the epoch counter of the training loader's sampler, and
    ``model.stop_training``.

    Args:
        runner: a built :class:`~hapi_runner.training.runner.Runner`.
    """

    def __init__(self, runner) -> None:
        import paddle

        from ..paddle_compat import create_optimizer_state

        self.runner = runner
        create_optimizer_state(runner.optimizer)
        self.weights = _copy_state(runner.network.state_dict())
        self.optimizer = _copy_state(runner.optimizer.state_dict())
        self.paddle_rng = paddle.get_rng_state()
        self.numpy_rng = np.random.get_state()
        self.python_rng = random.getstate()
        sampler = runner.train_loader.batch_sampler
        self.sampler_epoch = getattr(sampler, "epoch", None)
        self.stop_training = runner.model.stop_training

    def restore(self) -> None:
        """Puts everything captured back, in place: the tensors the run goes on with are the same objects."""
        import paddle

        runner = self.runner
        runner.network.set_state_dict(self.weights)
        runner.optimizer.set_state_dict(self.optimizer)
        paddle.set_rng_state(self.paddle_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        if self.sampler_epoch is not None:
            runner.train_loader.batch_sampler.epoch = self.sampler_epoch
        runner.model.stop_training = self.stop_training
