"""training/optim.py: the optimizer each name builds, how it applies weight decay, and the schedules' rates at known steps.

ScaledLR itself (scaling, floors, state) is tested in test_reduce_lr.py; here it is seen through build_optimizer.
"""

import math

import numpy as np
import paddle
import pytest

from hapi_runner.config.train_config import TrainConfig
from hapi_runner.training.optim import ScaledLR, build_optimizer, build_scheduler

pytestmark = pytest.mark.smoke

W = np.array([[0.5, -2.0], [1.0, -0.25]], dtype="float32")


def _one_step_without_loss_gradient(name, weight_decay, lr=0.1):
    """The weight after one optimizer step whose loss gradient is zero, so only weight decay moves it."""
    paddle.seed(0)
    net = paddle.nn.Linear(2, 2, bias_attr=False)
    net.weight.set_value(W)
    opt, _ = build_optimizer(TrainConfig(optimizer=name, lr=lr, weight_decay=weight_decay), net.parameters(), 1)
    (net(paddle.ones([1, 2])) * 0.0).sum().backward()
    opt.step()
    return opt, net.weight.numpy()


@pytest.mark.parametrize("name, cls, expected", [
    ("sgd", paddle.optimizer.SGD, W * (1 - 0.1 * 0.5)),  # L2: gradient c*w, step lr*c*w
    ("momentum", paddle.optimizer.Momentum, W * (1 - 0.1 * 0.5)),  # first step: velocity = gradient
    ("adam", paddle.optimizer.Adam, W - 0.1 * np.sign(W)),  # L2 added to the gradient, then normalised: a step of lr
    ("adamw", paddle.optimizer.AdamW, W * (1 - 0.1 * 0.5)),  # decoupled: lr*c*w, whatever the gradient
])
def test_each_optimizer_and_its_weight_decay(name, cls, expected):
    opt, weight = _one_step_without_loss_gradient(name, weight_decay=0.5)
    assert type(opt) is cls
    np.testing.assert_allclose(weight, expected, rtol=1e-4)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw"])
def test_no_weight_decay_leaves_weights_alone_without_gradient(name):
    _, weight = _one_step_without_loss_gradient(name, weight_decay=0.0)
    np.testing.assert_allclose(weight, W, rtol=1e-6)


def _rates(schedule, steps):
    rates = []
    for _ in range(steps):
        rates.append(schedule() if callable(schedule) else schedule)
        schedule.step()
    return np.array(rates)


def test_constant_without_warmup_is_a_float():
    assert build_scheduler(TrainConfig(lr=0.3, lr_schedule="constant"), 10) == 0.3


def test_cosine_follows_the_half_cosine_over_all_steps():
    config = TrainConfig(lr=0.2, lr_schedule="cosine", epochs=2)
    rates = _rates(build_scheduler(config, 5), 11)
    expected = [0.1 * (1 + math.cos(math.pi * k / 10)) for k in range(11)]
    np.testing.assert_allclose(rates, expected, atol=1e-7)


def test_step_decays_every_period_of_epochs():
    rates = _rates(build_scheduler(TrainConfig(lr=1.0, lr_schedule="step", lr_step_epochs=[2], lr_gamma=0.5, epochs=5), 3), 13)
    np.testing.assert_allclose(rates, [1.0] * 6 + [0.5] * 6 + [0.25])


def test_multistep_decays_at_each_milestone_epoch():
    config = TrainConfig(lr=1.0, lr_schedule="multistep", lr_step_epochs=[1, 3], lr_gamma=0.1, epochs=4)
    np.testing.assert_allclose(_rates(build_scheduler(config, 2), 8), [1.0, 1.0] + [0.1] * 4 + [0.01] * 2, rtol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_rises_linearly_to_the_peak(schedule):
    config = TrainConfig(lr=0.4, lr_schedule=schedule, warmup_epochs=1, epochs=3)
    rates = _rates(build_scheduler(config, 4), 6)
    np.testing.assert_allclose(rates[:5], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-7)  # the peak at the end of warm-up
    if schedule == "cosine":  # then the cosine over the 8 steps left
        assert rates[5] == pytest.approx(0.2 * (1 + math.cos(math.pi / 8)))


def test_the_optimizer_follows_its_scaled_rate():
    net = paddle.nn.Linear(2, 2)
    config = TrainConfig(lr=0.4, lr_schedule="step", lr_step_epochs=[1], lr_gamma=0.5, epochs=2)
    opt, lr = build_optimizer(config, net.parameters(), 2)
    assert isinstance(lr, ScaledLR) and opt.get_lr() == pytest.approx(0.4)
    lr.set_scale(0.25)
    assert opt.get_lr() == pytest.approx(0.1)
    for _ in range(2):  # into the second epoch: the inner step schedule halves, the scale stays
        lr.step()
    assert (lr.inner_lr, opt.get_lr()) == (pytest.approx(0.2), pytest.approx(0.05))
