"""RunProgress: hapi's progress lines with the run's epoch numbers, read from captured stdout."""

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks import RunProgress
from hapi_runner.runfolder.resume import set_epoch_offset

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run


def epoch_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("Epoch ")]


@pytest.mark.parametrize("offset, expected", [(0, ["Epoch 1/2", "Epoch 2/2"]), (5, ["Epoch 6/7", "Epoch 7/7"])])
def test_hooks_print_the_runs_epochs(capsys, offset, expected):
    progress = RunProgress(log_freq=1, verbose=2)
    set_epoch_offset([progress], offset)
    progress.set_params({"epochs": 2, "steps": 1, "verbose": 2, "metrics": ["loss"]})
    progress.on_train_begin()
    for epoch in range(2):
        progress.on_epoch_begin(epoch)
    assert epoch_lines(capsys.readouterr().out) == expected


def test_a_resumed_fit_prints_the_runs_epochs(capsys):
    net = paddle.nn.Linear(4, 2)
    model = paddle.Model(net, paddle.static.InputSpec([None, 4], "float32", "x"), paddle.static.InputSpec([None, 1], "int64", "y"))
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
    data = paddle.io.TensorDataset([paddle.to_tensor(np.ones((4, 4), np.float32)), paddle.to_tensor(np.zeros((4, 1), np.int64))])
    progress = RunProgress(log_freq=1, verbose=2)
    set_epoch_offset([progress], 5)  # a 7-epoch run resumed after epoch 5
    model.fit(data, batch_size=4, epochs=2, verbose=2, callbacks=[progress])
    assert epoch_lines(capsys.readouterr().out) == ["Epoch 6/7", "Epoch 7/7"]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _drive(progress, clock, epochs, steps, wait, step_time, batch=10):
    """Runs the training hooks as hapi calls them: per batch ``wait`` s for data, then ``step_time`` s of step."""
    progress.set_params({"epochs": epochs, "steps": steps, "verbose": 2, "metrics": ["loss"]})
    progress.on_train_begin()
    for epoch in range(epochs):
        progress.on_epoch_begin(epoch)
        for step in range(steps):
            clock.now += wait
            progress.on_train_batch_begin(step)
            clock.now += step_time
            progress.on_train_batch_end(step, {"loss": 1.0, "batch_size": batch})
        progress.on_epoch_end(epoch, {"loss": 1.0})


def test_pace_figures_from_a_made_up_clock():
    from hapi_runner.callbacks.progress import Pace

    clock = FakeClock()
    pace = Pace(steps=10, epochs_after=2, clock=clock)
    for _ in range(4):  # 4 batches of 32 images: 0.25 s waiting for data, 0.75 s of step each
        clock.now += 0.25
        pace.batch_begin()
        clock.now += 0.75
        pace.batch_end(32)
    # 128 images in 4 s; a quarter of it waiting; 6 steps of this epoch left (6 s), then 2 x 10 steps (20 s).
    assert pace.figures() == {"img/s": "32", "data": "25%", "left": "0:06 epoch, 0:26 run"}


def test_pace_says_nothing_before_the_first_batch():
    from hapi_runner.callbacks.progress import Pace

    assert Pace(steps=5, epochs_after=0, clock=FakeClock()).figures() == {}


@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_lines_show_throughput_data_share_and_eta(capsys, verbose):
    clock = FakeClock()
    progress = RunProgress(log_freq=2, verbose=verbose, clock=clock)
    set_epoch_offset([progress], 1)  # the second and third epochs of a 3-epoch run
    _drive(progress, clock, epochs=2, steps=4, wait=0.1, step_time=0.4, batch=10)
    out = capsys.readouterr().out
    # Step 2 of epoch 2/3: 20 images in 1 s, 0.2 s of it waiting, 2 steps (1 s) left, then an epoch of 4 steps (2 s).
    assert "img/s: 20 - data: 20% - left: 0:01 epoch, 0:03 run" in out
    assert "left: 0:00 epoch, 0:00 run" in out  # the last line of the last epoch


@pytest.mark.parametrize("seconds, text", [(0.4, "0:00"), (59.6, "1:00"), (3725, "1:02:05")])
def test_clock_text(seconds, text):
    from hapi_runner.callbacks.progress import clock_text

    assert clock_text(seconds) == text
