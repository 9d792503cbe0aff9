"""ModelEMA: the update against numpy, the warm-up, swapping for evaluation, and a resume that continues exactly."""

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks.ema import ModelEMA, ema_decay
from hapi_runner.errors import UsageError
from helpers import points


def make_model(seed=0, momentum=0.9):
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():  # the same parameter names each time, as in a new process
        net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.BatchNorm1D(4), paddle.nn.Linear(4, 2))
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.Momentum(0.1, momentum=momentum, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
    return net, model


def weights(net):
    return {k: v.numpy().astype(np.float64).copy() for k, v in net.state_dict().items()}


class Recorder(paddle.callbacks.Callback):
    """The network's weights at the start and after each training batch and each evaluation."""

    def __init__(self):
        super().__init__()
        self.start, self.after_batch, self.at_eval_end, self.at_epoch_begin = None, [], [], []

    def on_train_begin(self, logs=None):
        self.start = weights(self.model.network)

    def on_train_batch_end(self, step, logs=None):
        self.after_batch.append((step, weights(self.model.network)))

    def on_eval_end(self, logs=None):
        self.at_eval_end.append(weights(self.model.network))

    def on_epoch_begin(self, epoch, logs=None):
        self.at_epoch_begin.append(weights(self.model.network))


def fit(model, callbacks, epochs, accumulate=1):
    model.fit(points(), points(8, seed=1), batch_size=4, epochs=epochs, shuffle=False, verbose=0,
              callbacks=callbacks, accumulate_grad_batches=accumulate)


def test_warmup_schedule():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.9, 1000) == 0.9
    assert ema_decay(0.999, 0, warmup=False) == 0.999
    values = [ema_decay(0.99, t) for t in range(2000)]
    assert all(a <= b for a, b in zip(values, values[1:])) and values[-1] == 0.99


@pytest.mark.parametrize("accumulate", [1, 2])
def test_update_arithmetic_matches_numpy_and_follows_optimizer_steps(accumulate):
    net, model = make_model()
    ema, rec = ModelEMA(0.9), Recorder()
    fit(model, [ema, rec], epochs=2, accumulate=accumulate)
    # 5 batches per epoch: with K=2 the optimizer steps after batches 1, 3 and 4 (the last).
    stepped = [0, 1, 2, 3, 4] if accumulate == 1 else [1, 3, 4]
    shadow, t = rec.start, 0
    for step, w in rec.after_batch:
        if step in stepped:
            d = min(0.9, (1 + t) / (10 + t))
            shadow = {k: d * shadow[k] + (1 - d) * w[k] for k in w}
            t += 1
    assert ema.updates == t == 2 * len(stepped)
    for name, value in shadow.items():
        np.testing.assert_allclose(ema.shadow[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert any("_mean" in name for name in ema.shadow)  # BatchNorm's running statistics are averaged too


def test_evaluation_sees_the_ema_weights_and_training_resumes_with_its_own():
    net, model = make_model()
    ema, rec = ModelEMA(0.5), Recorder()
    fit(model, [ema, rec], epochs=2)
    first_eval = rec.at_eval_end[0]
    training_after_epoch_1 = rec.after_batch[4][1]
    assert not np.allclose(first_eval["0.weight"], training_after_epoch_1["0.weight"])
    for name in first_eval:  # the second epoch starts from the training weights, not the EMA
        np.testing.assert_array_equal(rec.at_epoch_begin[1][name], training_after_epoch_1[name])
    # After fit the network holds the EMA weights (what is exported and served); the training ones are aside.
    final = weights(net)
    for name, value in final.items():
        np.testing.assert_array_equal(value, ema.shadow[name].numpy().astype(np.float64))
        np.testing.assert_array_equal(ema.training_state_dict()[name].numpy(), rec.after_batch[-1][1][name].astype(np.float32))


def test_swap_in_and_out_restores_the_training_weights_exactly():
    net, model = make_model()
    ema = ModelEMA(0.9)
    ema.set_model(model)
    ema.start(net)
    before = weights(net)
    with paddle.no_grad():
        for p in net.parameters():
            p.set_value(p * 1.5 + 0.25)  # the training weights move away from the shadow
    moved = weights(net)
    ema.swap_in()
    for name, value in weights(net).items():
        np.testing.assert_array_equal(value, before[name])
        np.testing.assert_array_equal(ema.training_state_dict()[name].numpy().astype(np.float64), moved[name])
    ema.swap_out()
    for name, value in weights(net).items():
        np.testing.assert_array_equal(value, moved[name])
    with ema.applied():
        np.testing.assert_array_equal(weights(net)["0.weight"], before["0.weight"])
    np.testing.assert_array_equal(weights(net)["0.weight"], moved["0.weight"])


def test_state_round_trip_continues_identically(tmp_path):
    # Momentum 0: the optimizer has no state of its own, so the test isolates the EMA's.
    net, model = make_model(momentum=0.0)
    ema = ModelEMA(0.8)
    fit(model, [ema], epochs=2)
    uninterrupted = {k: v.numpy() for k, v in ema.shadow.items()}

    net, model = make_model(momentum=0.0)
    ema = ModelEMA(0.8)
    fit(model, [ema], epochs=1)
    # What a checkpoint writes: the training weights, the EMA's JSON state and its arrays file.
    paddle.save(ema.training_state_dict(), str(tmp_path / "model.pdparams"))
    paddle.save(ema.arrays(), str(tmp_path / "ema.pdparams"))
    state = ema.state_dict()
    assert state["updates"] == 5 and state["file"] == "ema.pdparams"

    net, model = make_model(seed=9, momentum=0.0)
    net.set_state_dict(paddle.load(str(tmp_path / "model.pdparams")))
    resumed = ModelEMA(0.8)
    resumed.load_state_dict(state)
    resumed.load_arrays(paddle.load(str(tmp_path / "ema.pdparams")))
    fit(model, [resumed], epochs=1)
    assert resumed.updates == 10
    for name, value in uninterrupted.items():
        np.testing.assert_allclose(resumed.shadow[name].numpy(), value, rtol=1e-6, atol=1e-7, err_msg=name)


def test_a_shadow_of_another_network_is_refused():
    _, model = make_model()
    ema = ModelEMA(0.9)
    ema.load_arrays({"other.weight": np.zeros(3, np.float32)})
    ema.set_model(model)
    with pytest.raises(Exception, match="EMA weights do not match the network"):
        ema.on_train_begin()


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5, -0.1, True, "0.9"])
def test_bad_decay_is_refused(decay):
    with pytest.raises(UsageError, match="ema decay must be"):
        ModelEMA(decay)
