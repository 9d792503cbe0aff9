"""LossMean turns hapi's last-batch loss into the mean over the pass."""

import pytest

from hapi_runner.callbacks import History, LossMean


def test_epoch_and_eval_losses_become_sample_weighted_means():
    mean = LossMean()
    mean.on_epoch_begin(0)
    for loss, size in ((1.0, 10), (2.0, 10), (4.0, 5)):
        mean.on_train_batch_end(0, {"loss": [loss], "batch_size": size})
    logs = {"loss": [4.0], "acc_top1": 0.5}
    mean.on_epoch_end(0, logs)
    assert logs["loss"] == [pytest.approx((10 + 20 + 20) / 25)]
    assert logs["acc_top1"] == 0.5
    mean.on_eval_begin()
    mean.on_eval_batch_end(0, {"loss": [3.0], "batch_size": 3})
    mean.on_eval_batch_end(1, {"loss": [1.0], "batch_size": 1})
    eval_logs = {"loss": [1.0]}
    mean.on_eval_end(eval_logs)
    assert eval_logs["loss"] == [pytest.approx(10 / 4)]


def test_each_pass_starts_afresh_and_history_records_the_mean():
    mean, history = LossMean(), History()
    for epoch, losses in enumerate(([1.0, 3.0], [5.0, 5.0])):
        mean.on_epoch_begin(epoch)
        history.on_epoch_begin(epoch)
        for loss in losses:
            logs = {"loss": [loss], "batch_size": 8}
            mean.on_train_batch_end(0, logs)
            history.on_train_batch_end(0, logs)
        logs = {"loss": [losses[-1]]}
        mean.on_epoch_end(epoch, logs)
        history.on_epoch_end(epoch, logs)
    assert [r["train_loss"] for r in history.rows] == [pytest.approx(2.0), pytest.approx(5.0)]
