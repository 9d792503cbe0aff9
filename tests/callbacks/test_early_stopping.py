"""EarlyStopping: hooks driven with made-up logs first, then one real ``paddle.Model.fit``."""

import json
import logging
import math

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks.early_stopping import EarlyStopping
from hapi_runner.errors import UsageError
from helpers import linear_model, vectors

METRICS = ["loss", "acc_top1", "acc_top5"]


def tiny_model(lr=0.1):
    return linear_model(lr, "sgd")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def eval_logs(value, name="acc_top1"):
    logs = {"loss": [1.0], "acc_top1": 0.5, "acc_top5": 0.9, "batch_size": 16, "step": 3}
    logs[name] = [value] if name == "loss" else value
    return logs


def drive(cb, model, values, epochs=None, eval_freq=1, name="acc_top1", on_epoch_end=None):
    """Runs the hooks as hapi's fit does; ``values[i]`` is the metric at the i-th evaluation.

    Returns the run epochs that were trained.
    """
    epochs = epochs or len(values) * eval_freq
    cb.set_model(model)
    cb.set_params({"epochs": epochs, "metrics": METRICS})
    model.stop_training = False
    cb.on_train_begin()
    ran, values = [], list(values)
    for epoch in range(epochs):
        cb.on_epoch_begin(epoch)
        if on_epoch_end:
            on_epoch_end(cb.epoch)
        cb.on_epoch_end(epoch, {"loss": [1.0], "acc_top1": 0.5})
        ran.append(cb.epoch)
        if epoch % eval_freq == 0 and values:
            cb.on_eval_end(eval_logs(values.pop(0), name))
        if model.stop_training:
            break
    cb.on_train_end()
    return ran


# --- patience, best value, min_delta, baseline, start_from_epoch ----------------

@pytest.mark.parametrize("eval_freq, patience, stop_epoch", [(1, 3, 4), (2, 3, 5), (3, 2, 4), (2, 1, 3), (1, 0, 2)])
def test_patience_counts_epochs_not_evaluations(model, eval_freq, patience, stop_epoch):
    cb = EarlyStopping(patience=patience)
    ran = drive(cb, model, [0.9] + [0.5] * 20, epochs=40, eval_freq=eval_freq)
    assert ran[-1] == stop_epoch
    assert cb.stopped_early and cb.stopped_epoch == stop_epoch
    assert cb.stop_reason == {"monitor": "acc_top1", "best": 0.9, "best_epoch": 1, "patience": patience, "epoch": stop_epoch}


def test_improvements_restart_the_count(model):
    cb = EarlyStopping(patience=2)
    ran = drive(cb, model, [0.5, 0.6, 0.6, 0.7, 0.65, 0.69, 0.1, 0.1])
    assert (cb.best, cb.best_epoch) == (0.7, 4)
    assert ran[-1] == 6


@pytest.mark.parametrize("min_delta, best, best_epoch", [(0.0, 0.525, 3), (0.01, 0.52, 2), (0.1, 0.5, 1)])
def test_min_delta(model, min_delta, best, best_epoch):
    cb = EarlyStopping(patience=10, min_delta=min_delta)
    drive(cb, model, [0.5, 0.52, 0.525, 0.51])
    assert (cb.best, cb.best_epoch) == (best, best_epoch)


def test_loss_improves_downwards(model):
    cb = EarlyStopping(monitor="loss", patience=1)
    ran = drive(cb, model, [2.0, 1.5, 1.6, 1.0], name="loss")
    assert (cb.mode, cb.best, cb.best_epoch, ran[-1]) == ("min", 1.5, 2, 3)


def test_baseline_must_be_beaten(model):
    cb = EarlyStopping(patience=2, baseline=0.8)
    ran = drive(cb, model, [0.5, 0.7, 0.79, 0.9])
    assert ran[-1] == 2
    assert cb.stop_reason["best"] == 0.8 and cb.stop_reason["best_epoch"] is None
    cb = EarlyStopping(patience=2, baseline=0.8)
    drive(cb, model, [0.5, 0.81, 0.7, 0.7], epochs=10)
    assert (cb.best, cb.best_epoch, cb.stopped_epoch) == (0.81, 2, 4)


def test_start_from_epoch_ignores_the_first_epochs(model):
    falling = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    cb = EarlyStopping(patience=1)
    assert drive(cb, model, falling)[-1] == 2
    cb = EarlyStopping(patience=1, start_from_epoch=3)
    assert drive(cb, model, falling)[-1] == 5
    assert (cb.best, cb.best_epoch) == (0.6, 4)


def test_no_stop_reported_at_the_last_epoch(model):
    cb = EarlyStopping(patience=2)
    drive(cb, model, [0.9, 0.5, 0.5])
    assert cb.wait == 2
    assert not cb.stopped_early and cb.stop_reason is None and not model.stop_training


def test_stop_request_is_cleared_at_train_end(model):
    cb = EarlyStopping(patience=1)
    cb.set_model(model)
    cb.set_params({"epochs": 10, "metrics": METRICS})
    model.stop_training = False
    cb.on_train_begin()
    for epoch, value in enumerate([0.9, 0.5]):
        cb.on_epoch_begin(epoch)
        cb.on_eval_end(eval_logs(value))
    assert model.stop_training is True
    cb.on_train_end()
    assert model.stop_training is False  # hapi never resets it; a second fit would stop after one epoch


# --- the mode table and missing metrics ---------------------------------------

@pytest.mark.parametrize("monitor, mode, expected", [
    ("loss", None, "min"), ("eval_loss", None, "min"), ("train_loss", None, "min"), ("acc_top1", None, "max"),
    ("acc_top5", None, "max"), ("val_acc", None, "max"), ("loss", "max", "max"), ("f1", "max", "max"),
])
def test_mode_table(monitor, mode, expected):
    assert EarlyStopping(monitor=monitor, mode=mode).mode == expected


def test_unknown_metric_needs_mode():
    with pytest.raises(UsageError, match=r"cannot tell whether 'f1' should go up or down; pass mode='min' or mode='max'"):
        EarlyStopping(monitor="f1")


def test_missing_metric_in_params_lists_the_metrics(model):
    cb = EarlyStopping(monitor="acc_top5")
    cb.set_model(model)
    cb.set_params({"epochs": 3, "metrics": ["loss", "acc_top1"]})
    with pytest.raises(UsageError, match=r"monitor 'acc_top5' is not among the eval metrics: loss, acc_top1"):
        cb.on_train_begin()


def test_missing_metric_in_logs_lists_the_metrics(model):
    cb = EarlyStopping(monitor="acc_top5")
    cb.set_model(model)
    cb.set_params({"epochs": 3})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    with pytest.raises(UsageError, match=r"'acc_top5' is not among the eval metrics: acc_top1, loss; pass one of them"):
        cb.on_eval_end({"loss": [0.7], "acc_top1": 0.77, "batch_size": 16, "step": 3})


def test_train_metric_is_read_at_epoch_end(model):
    cb = EarlyStopping(monitor="train_loss", patience=1)
    cb.set_model(model)
    cb.set_params({"epochs": 5, "metrics": METRICS})
    cb.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.5, 0.6]):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": [loss], "acc_top1": 0.5})
        cb.on_eval_end({"loss": [9.0], "acc_top1": 0.1})  # ignored: a training metric is watched
    assert (cb.best, cb.best_epoch, cb.stopped_epoch) == (0.5, 2, 3)


# --- state for checkpoints ------------------------------------------------------

def test_state_round_trip_continues_counting(model):
    first = EarlyStopping(patience=3)
    drive(first, model, [0.5, 0.9, 0.6], epochs=10)
    state = json.loads(json.dumps(first.state_dict()))  # must be JSON-serialisable
    assert state == {"best": 0.9, "best_epoch": 2, "monitor": "acc_top1", "mode": "max", "count_from": 0}

    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(state)
    resumed.epoch_offset = 3  # the Runner sets this on resume
    ran = drive(resumed, model, [0.6, 0.6, 0.6], epochs=7)
    assert ran == [4, 5] and resumed.stopped_epoch == 5  # 5 - 2 >= 3: as if it had never stopped

    again = resumed  # a fresh fit() on the same instance starts over
    again.epoch_offset = 0
    assert drive(again, model, [0.1, 0.1], epochs=5) == [1, 2, 3, 4, 5]
    assert (again.best, again.best_epoch, again.stopped_epoch) == (0.1, 1, None)


def test_state_of_another_monitor_is_ignored(model, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("hapi_runner"), "propagate", True)
    cb = EarlyStopping(monitor="loss")
    with caplog.at_level(logging.WARNING, logger="hapi_runner"):
        cb.load_state_dict({"best": 0.9, "best_epoch": 2, "monitor": "acc_top1", "mode": "max", "count_from": 0})
    assert cb.best is None and not cb.restored
    assert "starting afresh" in caplog.text


# --- restore_best ---------------------------------------------------------------

def weights(model):
    return {k: v.numpy().copy() for k, v in model.network.state_dict().items()}


def set_weights(model, value):
    model.network.set_state_dict({k: np.full(v.shape, value, "float32") for k, v in model.network.state_dict().items()})


@pytest.mark.parametrize("values, epochs, restored, final_value", [
    ([0.5, 0.9, 0.6, 0.6, 0.6], 10, 2, 2.0),  # stopped early at epoch 4
    ([0.5, 0.9, 0.6], 3, 2, 2.0),  # ran to the end, the last epoch worse
    ([0.5, 0.6, 0.9], 3, None, 3.0),  # the last epoch is the best: nothing to restore
])
def test_restore_best(values, epochs, restored, final_value):
    model = tiny_model()
    cb = EarlyStopping(patience=2, restore_best=True)
    # Each epoch "trains" the weights to the epoch's number, so the restored ones are recognisable.
    drive(cb, model, values, epochs=epochs, on_epoch_end=lambda e: set_weights(model, float(e)))
    assert cb.restored_epoch == restored
    assert all(np.all(w == final_value) for w in weights(model).values())


def test_restore_best_off_keeps_the_last_weights():
    model = tiny_model()
    cb = EarlyStopping(patience=1)
    drive(cb, model, [0.9, 0.5, 0.5], epochs=10, on_epoch_end=lambda e: set_weights(model, float(e)))
    assert cb.restored_epoch is None and all(np.all(w == 2.0) for w in weights(model).values())


# --- eager argument checks ------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"patience": -1}, r"patience must be >= 0 \(epochs\), got -1"),
    ({"patience": 2.5}, r"patience must be an integer >= 0 \(epochs\), got 2.5"),
    ({"patience": True}, r"patience must be an integer >= 0"),
    ({"start_from_epoch": -2}, r"start_from_epoch must be >= 0 \(epochs\), got -2"),
    ({"min_delta": -0.1}, r"min_delta must be >= 0, got -0.1"),
    ({"baseline": math.nan}, r"baseline must be a finite number, got nan"),
    ({"baseline": "0.9"}, r"baseline must be a finite number, got '0.9'"),
    ({"restore_best": "yes"}, r"restore_best must be true or false, got 'yes'"),
    ({"mode": "maximum"}, r"mode must be 'min' or 'max', got 'maximum'"),
    ({"monitor": ""}, r"monitor must be a metric name"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        EarlyStopping(**kwargs)


# --- one real fit ----------------------------------------------------------------

class WeightsAtEpochEnd(paddle.callbacks.Callback):
    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs=None):
        self.by_epoch[epoch + 1] = weights(self.model)


def test_fit_stops_early_and_restores_the_best_weights():
    model = tiny_model()
    data = vectors()
    # min_delta far above any change: epoch 1 stays the best, so the stop epoch is certain.
    stopper = EarlyStopping(monitor="loss", patience=2, min_delta=100.0, restore_best=True)
    recorder = WeightsAtEpochEnd()
    model.fit(data, data, batch_size=16, epochs=20, eval_freq=1, verbose=0, shuffle=False,
              callbacks=[recorder, stopper])
    assert sorted(recorder.by_epoch) == [1, 2, 3]
    assert stopper.stopped_early and stopper.stop_reason["epoch"] == 3 and stopper.stop_reason["best_epoch"] == 1
    assert stopper.restored_epoch == 1
    final = weights(model)
    assert all(np.array_equal(final[k], recorder.by_epoch[1][k]) for k in final)
    assert not all(np.array_equal(final[k], recorder.by_epoch[3][k]) for k in final)
    assert model.stop_training is False
