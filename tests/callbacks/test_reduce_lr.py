"""ReduceLROnPlateau and the ScaledLR it turns: hooks with made-up logs, the optimizer state, then real fits."""

import json
import logging
import math

import paddle
import pytest
from paddle.optimizer import lr as lrs

from hapi_runner.callbacks.reduce_lr import ReduceLROnPlateau
from hapi_runner.config.train_config import TrainConfig
from hapi_runner.errors import UsageError
from hapi_runner.training.optim import ScaledLR, build_optimizer
from hapi_runner.paddle_compat import current_lr, lr_schedule_name, scaled_lr_of
from helpers import linear_model, vectors

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

METRICS = ["loss", "acc_top1", "acc_top2"]


def tiny_model(learning_rate=0.1):
    """``learning_rate`` as the optimizer takes it: a float or an LRScheduler."""
    return linear_model(learning_rate, "momentum")


def drive(cb, model, losses, epochs=None, eval_freq=1, begin=True):
    """Runs the hooks as hapi's fit does; ``losses[i]`` is the eval loss at the i-th evaluation."""
    epochs = epochs or len(losses) * eval_freq
    cb.set_model(model)
    cb.set_params({"epochs": epochs, "metrics": METRICS})
    if begin:
        cb.on_train_begin()
    losses = list(losses)
    for epoch in range(epochs):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": [1.0], "acc_top1": 0.5})
        if epoch % eval_freq == 0 and losses:
            cb.on_eval_end({"loss": [losses.pop(0)], "acc_top1": 0.5, "acc_top2": 0.7, "batch_size": 16, "step": 3})
    cb.on_train_end()


# --- ScaledLR ---------------------------------------------------------------------

def test_scaled_float_and_min_lr():
    lr = ScaledLR(0.1)
    assert lr() == 0.1 and lr.scale == 1.0
    lr.set_scale(0.1)
    assert lr() == pytest.approx(0.01)
    lr.step()
    assert lr() == pytest.approx(0.01) and lr.last_epoch == 1
    lr.set_scale(0.001, min_lr=0.005)
    assert lr() == 0.005  # the scaling stops at min_lr


def test_scaled_schedule_follows_its_inner_schedule():
    reference = lrs.CosineAnnealingDecay(0.1, T_max=10)
    lr = ScaledLR(lrs.CosineAnnealingDecay(0.1, T_max=10), scale=0.5)
    for _ in range(4):
        assert lr() == pytest.approx(0.5 * reference())
        assert lr.inner.last_epoch == reference.last_epoch == lr.last_epoch
        lr.step()
        reference.step()


def test_min_lr_never_lifts_a_schedule_that_is_lower_by_itself():
    lr = ScaledLR(lrs.LinearWarmup(0.1, warmup_steps=4, start_lr=0.0, end_lr=0.1), scale=0.01, min_lr=0.01)
    assert lr() == 0.0  # the warm-up's start
    lr.step()
    assert lr() == pytest.approx(0.01)  # 0.025 * 0.01 is below the floor; the floor applies
    lr.step(4)
    assert lr() == pytest.approx(0.01)


def test_scaled_lr_state_round_trip_is_plain_data():
    lr = ScaledLR(lrs.StepDecay(0.1, step_size=2, gamma=0.5))
    for _ in range(5):
        lr.step()
    lr.set_scale(0.25, min_lr=1e-5)
    state = lr.state_dict()
    assert state["scale"] == 0.25 and state["min_lr"] == 1e-5 and state["inner"]["last_epoch"] == 5
    assert state["inner_type"] == "StepDecay"
    again = ScaledLR(lrs.StepDecay(0.1, step_size=2, gamma=0.5))
    again.set_state_dict(json.loads(json.dumps(state)))
    assert (again(), again.scale, again.inner.last_epoch) == (lr(), 0.25, 5)


@pytest.mark.parametrize("saved, loading, match", [
    (lambda: lrs.CosineAnnealingDecay(0.1, T_max=10), lambda: 0.1,
     r"saved with learning-rate schedule CosineAnnealingDecay, this run uses constant; resume with the same --lr-schedule"),
    (lambda: 0.1, lambda: lrs.StepDecay(0.1, step_size=2),
     r"saved with learning-rate schedule constant, this run uses StepDecay"),
])
def test_scaled_lr_refuses_the_state_of_another_schedule(saved, loading, match):
    state = ScaledLR(saved()).state_dict()
    with pytest.raises(UsageError, match=match):
        ScaledLR(loading()).set_state_dict(state)


@pytest.mark.parametrize("rate, name", [(0.1, None), (ScaledLR(0.1), None),
                                        (ScaledLR(lrs.CosineAnnealingDecay(0.1, T_max=4)), "CosineAnnealingDecay"),
                                        (lrs.StepDecay(0.1, step_size=2), "StepDecay")])
def test_lr_schedule_name_looks_through_the_wrapper(rate, name):
    assert lr_schedule_name(tiny_model(rate)) == name


def test_scaled_lr_reads_a_schedule_state_saved_without_the_wrapper():
    old = lrs.StepDecay(0.1, step_size=2, gamma=0.5)
    for _ in range(3):
        old.step()
    lr = ScaledLR(lrs.StepDecay(0.1, step_size=2, gamma=0.5))
    lr.set_state_dict(old.state_dict())
    assert lr() == pytest.approx(old()) and lr.scale == 1.0 and lr.last_epoch == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"schedule": "0.1"}, r"schedule must be a float or a paddle.optimizer.lr.LRScheduler, got '0.1'"),
    ({"schedule": 0.1, "scale": 0}, r"scale must be a number > 0, got 0"),
    ({"schedule": 0.1, "min_lr": -1.0}, r"min_lr must be a number >= 0, got -1.0"),
])
def test_scaled_lr_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        ScaledLR(**kwargs)


def test_scaled_lr_refuses_paddle_reduce_on_plateau():
    with pytest.raises(UsageError, match=r"use hapi_runner.callbacks.reduce_lr.ReduceLROnPlateau instead"):
        ScaledLR(lrs.ReduceOnPlateau(0.1))


@pytest.mark.parametrize("schedule, inner_type", [("constant", float), ("cosine", lrs.CosineAnnealingDecay),
                                                  ("step", lrs.StepDecay), ("multistep", lrs.MultiStepDecay)])
def test_build_optimizer_wraps_every_rate(schedule, inner_type):
    net = paddle.nn.Linear(2, 2)
    opt, lr = build_optimizer(TrainConfig(lr_schedule=schedule, lr_step_epochs=[1]), net.parameters(), steps_per_epoch=4)
    assert isinstance(lr, ScaledLR) and isinstance(lr.inner, inner_type) and lr.scale == 1.0
    assert opt.get_lr() == pytest.approx(0.01)


def test_model_save_load_restores_scale_and_schedule_position(tmp_path):
    def make():
        cfg = TrainConfig(lr=0.1, lr_schedule="cosine", warmup_epochs=1, epochs=4)
        model = tiny_model()
        opt, lr = build_optimizer(cfg, model.network.parameters(), steps_per_epoch=4)
        model.prepare(opt, paddle.nn.CrossEntropyLoss())
        return model, lr

    model, lr = make()
    model.fit(vectors(), batch_size=16, epochs=2, verbose=0)  # 8 steps: past the warm-up, into the cosine
    lr.set_scale(0.1, min_lr=1e-6)
    model.save(str(tmp_path / "ck"))
    fresh, fresh_lr = make()
    assert fresh_lr.scale == 1.0 and fresh_lr.last_epoch == 0
    fresh.load(str(tmp_path / "ck"))
    assert (fresh_lr.scale, fresh_lr.min_lr, fresh_lr.last_epoch) == (0.1, 1e-6, 8)
    assert fresh_lr.inner.last_epoch == lr.inner.last_epoch == 8
    assert fresh_lr() == pytest.approx(lr()) and current_lr(fresh) == pytest.approx(current_lr(model))


def test_a_plain_rate_is_wrapped_when_needed():
    model = tiny_model(0.05)
    lr = scaled_lr_of(model)
    assert isinstance(lr, ScaledLR) and lr.inner == 0.05 and scaled_lr_of(model) is lr


# --- the callback, driven by hand ----------------------------------------------------

@pytest.mark.parametrize("eval_freq, patience, reduced_at",
                         [(1, 2, [3, 5, 7]), (2, 2, [3, 5, 7]), (2, 3, [5]), (3, 2, [4, 7])])
def test_patience_counts_epochs(eval_freq, patience, reduced_at):
    model = tiny_model(ScaledLR(0.1))
    cb = ReduceLROnPlateau(patience=patience)
    drive(cb, model, [1.0] * 10, epochs=7, eval_freq=eval_freq)
    assert [r["epoch"] for r in cb.reductions] == reduced_at
    assert current_lr(model) == pytest.approx(0.1 * 0.1 ** len(reduced_at))


def test_improvement_restarts_the_count():
    model = tiny_model(ScaledLR(0.1))
    cb = ReduceLROnPlateau(patience=2, min_delta=0.0)
    drive(cb, model, [1.0, 0.9, 0.95, 0.8, 0.85, 0.85, 0.85])
    assert (cb.best, cb.best_epoch) == (0.8, 4)
    assert [r["epoch"] for r in cb.reductions] == [6]


def test_min_delta():
    model = tiny_model(ScaledLR(0.1))
    cb = ReduceLROnPlateau(patience=1, min_delta=0.05)
    drive(cb, model, [1.0, 0.97, 0.90, 0.88])
    assert (cb.best, cb.best_epoch) == (0.90, 3)
    assert [r["epoch"] for r in cb.reductions] == [2, 4]


@pytest.mark.parametrize("cooldown, reduced_at", [(0, [2, 3, 4, 5, 6]), (1, [2, 4, 6]), (2, [2, 5])])
def test_cooldown(cooldown, reduced_at):
    model = tiny_model(ScaledLR(1.0))
    cb = ReduceLROnPlateau(patience=1, cooldown=cooldown, factor=0.5)
    drive(cb, model, [1.0] * 6)
    assert [r["epoch"] for r in cb.reductions] == reduced_at


def test_min_lr_bounds_the_reductions():
    model = tiny_model(ScaledLR(0.1))
    cb = ReduceLROnPlateau(patience=1, factor=0.1, min_lr=0.002)
    drive(cb, model, [1.0] * 6)
    assert [r["lr_after"] for r in cb.reductions] == [pytest.approx(0.01), pytest.approx(0.002)]
    assert current_lr(model) == pytest.approx(0.002)


def test_accuracy_monitor_and_logging(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("hapi_runner"), "propagate", True)
    model = tiny_model(ScaledLR(0.1))
    cb = ReduceLROnPlateau(monitor="acc_top1", patience=1, factor=0.5)
    assert cb.mode == "max"
    cb.set_model(model)
    cb.set_params({"epochs": 5, "metrics": METRICS})
    cb.on_train_begin()
    with caplog.at_level(logging.INFO, logger="hapi_runner"):
        for epoch, acc in enumerate([0.5, 0.6, 0.55]):
            cb.on_epoch_begin(epoch)
            cb.on_eval_end({"loss": [1.0], "acc_top1": acc})
    assert [r["epoch"] for r in cb.reductions] == [3]
    assert "ReduceLROnPlateau: acc_top1 has not improved on 0.6 for 1 epochs; learning rate 0.1 -> 0.05" in caplog.text


@pytest.mark.parametrize("monitor, mode, expected", [("loss", None, "min"), ("train_loss", None, "min"),
                                                     ("acc_top1", None, "max"), ("f1", "max", "max")])
def test_mode_table(monitor, mode, expected):
    assert ReduceLROnPlateau(monitor=monitor, mode=mode).mode == expected


def test_unknown_metric_needs_mode():
    with pytest.raises(UsageError, match=r"cannot tell whether 'eval_f1' should go up or down; pass mode="):
        ReduceLROnPlateau(monitor="eval_f1")


def test_missing_metric_lists_the_metrics():
    model = tiny_model()
    cb = ReduceLROnPlateau(monitor="acc_top5")
    cb.set_model(model)
    cb.set_params({"epochs": 2, "metrics": METRICS})
    with pytest.raises(UsageError, match=r"'acc_top5' is not among the eval metrics: loss, acc_top1, acc_top2"):
        cb.on_train_begin()
    cb = ReduceLROnPlateau(monitor="acc_top5")
    cb.set_model(model)
    cb.set_params({"epochs": 2})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    with pytest.raises(UsageError, match=r"'acc_top5' is not among the eval metrics: acc_top1, loss;"):
        cb.on_eval_end({"loss": [0.7], "acc_top1": 0.77})


def test_state_round_trip_continues_counting():
    model = tiny_model(ScaledLR(0.1))
    first = ReduceLROnPlateau(patience=3)
    drive(first, model, [1.0, 0.5, 0.6, 0.6])
    state = json.loads(json.dumps(first.state_dict()))
    assert state["best"] == 0.5 and state["best_epoch"] == 2 and state["last_reduced_epoch"] is None

    resumed = ReduceLROnPlateau(patience=3)
    resumed.load_state_dict(state)
    resumed.epoch_offset = 4
    drive(resumed, model, [0.6, 0.6, 0.6, 0.6], epochs=4)
    # 5 - 2 >= 3, as if it had never stopped; then 3 epochs after that reduction.
    assert [r["epoch"] for r in resumed.reductions] == [5, 8]
    assert resumed.state_dict()["last_reduced_epoch"] == 8


def test_needs_an_optimizer():
    model = paddle.Model(paddle.nn.Linear(16, 4))
    model.prepare()
    cb = ReduceLROnPlateau()
    cb.set_model(model)
    cb.set_params({"epochs": 1, "metrics": ["loss"]})
    with pytest.raises(UsageError, match=r"needs a model prepared with an optimizer"):
        cb.on_train_begin()


@pytest.mark.parametrize("kwargs, match", [
    ({"factor": 0}, r"factor must be > 0 and < 1, got 0"),
    ({"factor": 1.0}, r"factor must be > 0 and < 1, got 1.0"),
    ({"factor": 1.5}, r"factor must be .* got 1.5"),
    ({"factor": True}, r"factor must be .* got True"),
    ({"patience": -1}, r"patience must be >= 0 \(epochs\), got -1"),
    ({"cooldown": 0.5}, r"cooldown must be an integer >= 0 \(epochs\), got 0.5"),
    ({"min_lr": -1e-3}, r"min_lr must be >= 0, got -0.001"),
    ({"min_lr": math.inf}, r"min_lr must be a finite number, got inf"),
    ({"min_delta": -1}, r"min_delta must be >= 0, got -1"),
    ({"mode": "down"}, r"mode must be 'min' or 'max', got 'down'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        ReduceLROnPlateau(**kwargs)


# --- real fits: a float rate, a cosine schedule, and a plain float optimizer -------------

@pytest.mark.parametrize("rate", ["scaled-float", "scaled-cosine", "plain-float", "plain-cosine"])
def test_fit_lowers_the_rate(rate):
    steps = 4  # 64 samples, batch 16
    inner = 0.1 if rate.endswith("float") else lrs.CosineAnnealingDecay(0.1, T_max=5 * steps)
    model = tiny_model(ScaledLR(inner) if rate.startswith("scaled") else inner)
    # min_delta far above any change: every evaluation after the first is a plateau.
    cb = ReduceLROnPlateau(patience=1, factor=0.5, min_delta=100.0)
    data = vectors()
    model.fit(data, data, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[cb])
    lr = scaled_lr_of(model)
    assert [r["epoch"] for r in cb.reductions] == [2, 3] and lr.scale == 0.25
    cosine = lrs.CosineAnnealingDecay(0.1, T_max=5 * steps)
    for _ in range(3 * steps):
        cosine.step()
    expected = 0.1 if rate.endswith("float") else cosine()
    assert current_lr(model) == pytest.approx(0.25 * expected)
