"""NanGuard: hooks with made-up batch logs, then a real fit that meets an infinite input."""

import math

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks.nan_guard import NanGuard, NonFiniteLossError
from hapi_runner.errors import HapiRunnerError, UsageError
from helpers import ArrayDataset


def guard_at(epoch):
    guard = NanGuard()
    guard.on_train_begin()
    guard.on_epoch_begin(epoch - 1)
    return guard


@pytest.mark.parametrize("loss", [[0.7], [0.0], 1.5, [0.7, 0.2], None, np.float32(3.0)])
def test_finite_losses_pass(loss):
    guard = guard_at(1)
    guard.on_train_batch_end(0, {"loss": loss, "batch_size": 16, "step": 0})
    guard.on_train_batch_end(1, {})
    assert guard.reason is None


@pytest.mark.parametrize("loss, shown", [([math.nan], "nan"), ([math.inf], "inf"), ([-math.inf], "-inf"),
                                         ([0.5, math.nan], "nan"), (np.float32("nan"), "nan")])
def test_non_finite_loss_raises_at_once(loss, shown):
    guard = guard_at(3)
    guard.on_train_batch_end(0, {"loss": [0.5]})
    with pytest.raises(NonFiniteLossError, match=rf"^loss became {shown} at epoch 3, step 5; the last checkpoint \(if any\) "
                                                 r"is intact; lower --lr or check the data\.$"):
        guard.on_train_batch_end(4, {"loss": loss, "batch_size": 16, "step": 4})
    assert guard.reason["epoch"] == 3 and guard.reason["step"] == 5
    assert str(guard.reason["loss"]) == shown


def test_error_kind_and_exit_code():
    assert issubclass(NonFiniteLossError, HapiRunnerError) and not issubclass(NonFiniteLossError, UsageError)
    assert NonFiniteLossError.exit_code == 1


def test_reason_is_reset_for_a_new_fit():
    guard = guard_at(1)
    with pytest.raises(NonFiniteLossError):
        guard.on_train_batch_end(0, {"loss": [math.nan]})
    guard.on_train_begin()
    assert guard.reason is None


def test_epochs_count_from_the_resume_point():
    guard = NanGuard()
    guard.epoch_offset = 4  # set by the Runner on resume
    guard.on_train_begin()
    guard.on_epoch_begin(1)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 6, step 1;"):
        guard.on_train_batch_end(0, {"loss": [math.inf]})


# --- one real fit ----------------------------------------------------------------------

class Recorder(paddle.callbacks.Callback):
    """Stands in for a checkpoint callback: nothing may reach an epoch's end after the NaN."""

    def __init__(self):
        self.batches, self.epoch_ends = 0, 0

    def on_train_batch_end(self, step, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends += 1


def test_fit_stops_at_the_first_bad_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16)).astype("float32")
    y = rng.integers(0, 4, (64, 1)).astype("int64")
    x[16 + 5, 3] = np.inf  # in the second batch of 16
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(16, 4))
    model = paddle.Model(net, paddle.static.InputSpec([None, 16], "float32", "x"),
                         paddle.static.InputSpec([None, 1], "int64", "y"))
    model.prepare(paddle.optimizer.SGD(learning_rate=0.1, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
    guard, recorder = NanGuard(), Recorder()
    data = ArrayDataset(x, y)
    with pytest.raises(NonFiniteLossError, match=r"^loss became nan at epoch 1, step 2;"):
        model.fit(data, batch_size=16, epochs=5, verbose=0, shuffle=False, callbacks=[guard, recorder])
    assert guard.reason["epoch"] == 1 and guard.reason["step"] == 2 and math.isnan(guard.reason["loss"])
    assert recorder.batches == 1 and recorder.epoch_ends == 0  # the guard ran first and nothing came after it
