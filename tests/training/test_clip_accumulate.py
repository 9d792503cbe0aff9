"""Global-norm gradient clipping through build_optimizer, and hapi's gradient accumulation with the LR schedule."""

from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from hapi_runner.training.accumulation import optimizer_stepped, optimizer_steps_per_epoch
from hapi_runner.callbacks.step_lr import OptimizerStepLR
from hapi_runner.errors import UsageError
from helpers import points
from hapi_runner.training.optim import build_grad_clip, build_optimizer
from hapi_runner.paddle_compat import current_lr


def config(**overrides):
    values = dict(lr=0.5, lr_schedule="constant", lr_step_epochs=[1], lr_gamma=0.1, warmup_epochs=0, epochs=2,
                  weight_decay=0.0, optimizer="sgd", momentum=0.9)
    values.update(overrides)
    return SimpleNamespace(**values)


def two_layers(seed=0):
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2))


def params(net):
    return [p.numpy().astype(np.float64).copy() for p in net.parameters()]


def grads_of(net, loss_fn):
    net.clear_gradients()
    loss_fn(net).backward()
    grads = [p.grad.numpy().astype(np.float64).copy() for p in net.parameters()]
    net.clear_gradients()
    return grads


def huge_loss(net):
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    return net(x).sum() * 1e6


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_a_huge_gradient_is_applied_clipped_to_the_global_norm(weight_decay):
    net = two_layers()
    grads = grads_of(net, huge_loss)
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    assert norm > 1e5
    before = params(net)
    opt, _ = build_optimizer(config(weight_decay=weight_decay), net.parameters(), 4, grad_clip=build_grad_clip(2.0))
    huge_loss(net).backward()
    opt.step()
    for w0, w1, g in zip(before, params(net), grads):
        clipped = g * (2.0 / norm)
        np.testing.assert_allclose(w1, w0 - 0.5 * (clipped + weight_decay * w0), rtol=1e-5, atol=1e-6)
    applied = np.sqrt(sum(((w0 - w1) ** 2).sum() for w0, w1 in zip(before, params(net))))
    if not weight_decay:
        assert applied == pytest.approx(0.5 * 2.0, rel=1e-5)


def test_a_gradient_within_the_norm_is_left_alone():
    net = two_layers()
    small = lambda n: huge_loss(n) * 1e-9  # noqa: E731
    grads = grads_of(net, small)
    before = params(net)
    opt, _ = build_optimizer(config(), net.parameters(), 4, grad_clip=build_grad_clip(10.0))
    small(net).backward()
    opt.step()
    for w0, w1, g in zip(before, params(net), grads):
        np.testing.assert_allclose(w1, w0 - 0.5 * g, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("norm", [None, 0, 0.0])
def test_no_norm_means_no_clipping(norm):
    assert build_grad_clip(norm) is None


@pytest.mark.parametrize("norm", [-1.0, float("inf"), "1", True])
def test_bad_norm_is_refused(norm):
    with pytest.raises(UsageError, match="clip_grad must be"):
        build_grad_clip(norm)


# -- accumulation --------------------------------------------------------------


def test_optimizer_step_arithmetic():
    assert [optimizer_stepped(s, 3, 7) for s in range(7)] == [False, False, True, False, False, True, True]
    assert [optimizer_stepped(s, 1, 4) for s in range(4)] == [True] * 4
    assert optimizer_steps_per_epoch(7, 3) == 3 and optimizer_steps_per_epoch(6, 3) == 2 and optimizer_steps_per_epoch(5, 1) == 5


def test_hapi_accumulation_applies_the_sum_of_the_batches_gradients():
    """fit(accumulate_grad_batches=2) takes one SGD step with the sum of two batches' mean gradients."""
    data = points(8, seed=1)
    net = two_layers()
    loss = paddle.nn.CrossEntropyLoss()
    expected = params(net)
    for first in (0, 4):  # two groups of two batches of 2
        total = None
        for start in (first, first + 2):
            x, y = paddle.to_tensor(data.x[start:start + 2]), paddle.to_tensor(data.y[start:start + 2])
            g = grads_of(net, lambda n: loss(n(x), y))
            total = g if total is None else [a + b for a, b in zip(total, g)]
        expected = [w - 0.1 * g for w, g in zip(expected, total)]
        with paddle.no_grad():
            for p, w in zip(net.parameters(), expected):
                p.set_value(w.astype(np.float32))
    fitted = two_layers()
    model = paddle.Model(fitted)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=fitted.parameters()), loss)
    model.fit(data, batch_size=2, epochs=1, shuffle=False, verbose=0, accumulate_grad_batches=2)
    for got, want in zip(params(fitted), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class LrAtStep(paddle.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, step, logs=None):
        self.rates.append(current_lr(self.model))


@pytest.mark.parametrize("own_callback", [False, True])
def test_the_schedule_counts_optimizer_steps_only_with_optimizer_step_lr(own_callback):
    """hapi's own LRScheduler steps per batch; OptimizerStepLR per optimizer step, the count build_scheduler is given."""
    batches, k, epochs = 7, 3, 2
    net = two_layers()
    steps = optimizer_steps_per_epoch(batches, k)
    opt, lr = build_optimizer(config(lr_schedule="step", lr_step_epochs=[1], lr_gamma=0.1, epochs=epochs),
                              net.parameters(), steps)
    model = paddle.Model(net)
    model.prepare(opt, paddle.nn.CrossEntropyLoss())
    record = LrAtStep()
    callbacks = [record, OptimizerStepLR()] if own_callback else [record]
    model.fit(points(batches * 2, seed=1), batch_size=2, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks,
              accumulate_grad_batches=k)
    if own_callback:
        assert lr.last_epoch == epochs * steps == 6
        # The rate of epoch 1 holds for all its batches, the decayed one for all of epoch 2.
        assert record.rates == pytest.approx([0.5] * batches + [0.05] * batches)
        assert callbacks[1].steps == 6
    else:
        assert lr.last_epoch == epochs * batches  # counts batches: the step decay comes after 3 of epoch 1's 7
        assert record.rates[:4] == pytest.approx([0.5, 0.5, 0.5, 0.05])


# -- the settings' checks ------------------------------------------------------


def test_recipe_defaults_are_all_off():
    from hapi_runner.config.checks import check_recipe_args

    assert check_recipe_args() == {"label_smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0, "randaugment": None,
                                   "random_erasing": 0.0, "ema": None, "clip_grad": None, "accumulate_grad_batches": 1}
    assert check_recipe_args(clip_grad=0, ema=0.9998, randaugment=10)["clip_grad"] is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(mix_prob=1.5), r"mix_prob must be >= 0.0 and <= 1.0, got 1.5"),
    (dict(ema=1.0), r"ema must be > 0.0 and < 1.0, got 1.0"),
    (dict(ema=0), r"ema must be > 0.0 and < 1.0, got 0"),
    (dict(label_smoothing=1), r"label_smoothing must be >= 0.0 and < 1.0, got 1"),
    (dict(mixup=-0.2), r"mixup must be >= 0.0, got -0.2"),
    (dict(cutmix=float("nan")), r"cutmix must be a finite number"),
    (dict(randaugment=11), r"randaugment must be >= 0.0 and <= 10.0, got 11"),
    (dict(random_erasing=-0.1), r"random_erasing must be >= 0.0 and <= 1.0"),
    (dict(clip_grad=-1), r"clip_grad must be > 0.0, got -1"),
    (dict(accumulate_grad_batches=0), r"accumulate_grad_batches must be >= 1, got 0"),
    (dict(accumulate_grad_batches=2.0), r"accumulate_grad_batches must be an integer"),
])
def test_bad_recipe_settings_are_refused_in_one_line(kwargs, match):
    from hapi_runner.config.checks import check_recipe_args

    with pytest.raises(UsageError, match=match) as info:
        check_recipe_args(**kwargs)
    assert "\n" not in str(info.value)
