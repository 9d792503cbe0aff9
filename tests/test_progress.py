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
