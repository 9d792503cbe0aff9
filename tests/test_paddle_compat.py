"""hapi_runner.paddle_compat: the shims that differ between Paddle 2.6 and 3.x."""

import numpy as np
import paddle
import pytest

from hapi_runner.paddle_compat import rng_state_for_checkpoint

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run


def test_a_saved_rng_state_repeats_the_draws_that_follow_it(tmp_path):
    """Paddle 2.6 pickles only the CPU generator's seed; the state must still survive paddle.save mid-stream."""
    paddle.seed(3)
    paddle.rand([5])  # mid-stream, as after weight initialisation: a bare seed would not describe this position
    paddle.save(rng_state_for_checkpoint(), str(tmp_path / "rng.pdstate"))
    after = paddle.rand([4]).numpy()
    paddle.rand([7])
    paddle.set_rng_state(paddle.load(str(tmp_path / "rng.pdstate")))
    np.testing.assert_array_equal(paddle.rand([4]).numpy(), after)


def test_taking_the_state_is_deterministic():
    """Two processes (or runs) at the same position save the same state and then draw the same numbers."""
    draws = []
    for _ in range(2):
        paddle.seed(5)
        paddle.rand([3])
        rng_state_for_checkpoint()
        draws.append(paddle.rand([4]).numpy())
    np.testing.assert_array_equal(draws[0], draws[1])


# -- one test per shim: what each reads or writes behind Paddle's API ---------------------------------------------

from hapi_runner import paddle_compat as compat  # noqa: E402


def prepared(schedule=True, clip=None, amp=None):
    """A paddle.Model of one Linear layer, prepared with Momentum (on a StepDecay schedule unless told otherwise)."""
    paddle.seed(0)
    network = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(4, 3))
    lr = paddle.optimizer.lr.StepDecay(0.1, step_size=2, gamma=0.5) if schedule else 0.1
    optimizer = paddle.optimizer.Momentum(lr, parameters=network.parameters(), grad_clip=clip)
    model = paddle.Model(network, paddle.static.InputSpec([None, 1, 2, 2], "float32", "x"),
                         paddle.static.InputSpec([None, 1], "int64", "y"))
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss(), amp_configs=amp)
    return model, optimizer


def one_step(model):
    x = np.ones((2, 1, 2, 2), np.float32)
    model.train_batch([x], [np.array([[0], [1]], np.int64)])


def test_conv_shims_rebuild_a_conv_for_other_channels_keeping_its_geometry():
    conv = paddle.nn.Conv2D(3, 8, 5, stride=2, padding=1, dilation=1, groups=1, bias_attr=False)
    grouped = paddle.nn.Conv2D(4, 8, 3, groups=4)
    rebuilt = compat.rebuild_conv(conv, 1)
    assert list(rebuilt.weight.shape) == [8, 1, 5, 5] and rebuilt.bias is None
    assert list(rebuilt(paddle.ones([1, 1, 9, 9])).shape) == list(conv(paddle.ones([1, 3, 9, 9])).shape)
    assert (compat.conv_groups(conv), compat.conv_groups(grouped)) == (1, 4)


def test_model_shims_read_what_prepare_was_given():
    clip = paddle.nn.ClipGradByGlobalNorm(0.5)
    model, optimizer = prepared(clip=clip)
    assert compat.optimizer_of(model) is optimizer
    assert isinstance(compat.loss_of(model), paddle.nn.CrossEntropyLoss)
    assert compat.grad_clip_of(optimizer) is clip and compat.grad_clip_of(prepared()[1]) is None
    assert compat.amp_level_of(model) == "O0"


def test_learning_rate_shims_see_the_schedule_and_the_current_rate():
    model, optimizer = prepared()
    schedule = compat.lr_scheduler_of(model)
    assert schedule is compat.learning_rate_of(optimizer) and isinstance(schedule, paddle.optimizer.lr.StepDecay)
    schedule.step()
    schedule.step()
    assert compat.current_lr(model) == pytest.approx(0.05)
    constant, _ = prepared(schedule=False)
    assert compat.lr_scheduler_of(constant) is None and compat.current_lr(constant) == pytest.approx(0.1)
    assert compat.lr_schedule_name(model) == "StepDecay"


def test_scaled_lr_of_wraps_a_foreign_schedule_once():
    from hapi_runner.training.optim import ScaledLR

    model, optimizer = prepared()
    wrapped = compat.scaled_lr_of(model)
    assert isinstance(wrapped, ScaledLR) and compat.scaled_lr_of(model) is wrapped
    assert compat.learning_rate_of(optimizer) is wrapped and compat.current_lr(model) == pytest.approx(0.1)


def test_accumulate_of_is_one_outside_a_fit_and_k_inside():
    model, _ = prepared()
    seen = []

    class Spy(paddle.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            seen.append(compat.accumulate_of(self.model))

    data = paddle.io.TensorDataset([paddle.ones([4, 1, 2, 2]), paddle.zeros([4, 1], "int64")])
    model.fit(data, batch_size=2, epochs=1, verbose=0, accumulate_grad_batches=2, callbacks=[Spy()])
    assert compat.accumulate_of(prepared()[0]) == 1 and seen == [2, 2]


def test_pending_optimizer_state_holds_what_set_state_dict_loaded():
    model, optimizer = prepared()
    one_step(model)
    saved = optimizer.state_dict()
    fresh = paddle.optimizer.Momentum(0.1, parameters=model.network.parameters())
    fresh.set_state_dict(saved)
    pending = compat.pending_optimizer_state(fresh)
    for param in model.network.parameters():
        key = f"{param.name}_velocity_0"
        np.testing.assert_array_equal(np.asarray(pending[key]), np.asarray(saved[key]))


def test_random_resized_crop_box_is_inside_the_image():
    from paddle.vision import transforms as T
    from PIL import Image

    top, left, height, width = compat.random_resized_crop_box(T.RandomResizedCrop(8), Image.new("RGB", (40, 30)))
    assert 0 <= top and top + height <= 30 and 0 <= left and left + width <= 40


def test_stop_requests_end_a_fit_and_are_undone():
    model, _ = prepared()
    compat.request_stop(model)
    assert model.stop_training
    compat.clear_stop_request(model)
    assert not model.stop_training


def test_set_cpu_threads_reaches_paddle_or_says_it_cannot():
    assert compat.set_cpu_threads(1) in (True, False)
    from paddle.base import core

    assert compat.set_cpu_threads(1) is hasattr(core, "set_num_threads")


def test_inference_enable_onednn_turns_it_on():
    config = paddle.inference.Config()
    compat.inference_enable_onednn(config, cache_capacity=4)
    assert (getattr(config, "onednn_enabled", None) or config.mkldnn_enabled)()


def test_parameter_names_and_remap_move_velocities_to_another_network_s_names():
    model, optimizer = prepared()
    one_step(model)
    saved_names = compat.parameter_names(model.network)
    other, _ = prepared()
    remapped = compat.remap_optimizer_state(optimizer.state_dict(), saved_names, compat.parameter_names(other.network))
    for key, name in compat.parameter_names(other.network).items():
        np.testing.assert_array_equal(np.asarray(remapped[f"{name}_velocity_0"]),
                                      np.asarray(optimizer.state_dict()[f"{saved_names[key]}_velocity_0"]))


class Rows(paddle.io.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return np.full([2], index, np.float32)


def test_drop_persistent_workers_forgets_the_loader_s_iterator():
    data = Rows()
    loader = paddle.io.DataLoader(data, batch_size=2, num_workers=1, persistent_workers=True)
    next(iter(loader))
    compat.drop_persistent_workers(loader)
    assert len(list(loader)) == 2  # a fresh iterator with new workers


def test_parallel_env_is_not_initialised_in_a_plain_process():
    assert compat.parallel_env_initialized() is False


def test_amp_shims_set_the_dtype_and_wrap_evaluation():
    model, _ = prepared(schedule=False, amp={"level": "O1"})
    assert compat.amp_level_of(model) == "O1" and compat.amp_dtype_of(model) == "float16"
    compat.set_amp_dtype(model, "O1", "bfloat16")
    assert compat.amp_dtype_of(model) == "bfloat16"
    compat.evaluate_under_amp(model, "O1", "bfloat16")
    out = model.predict_batch([np.ones((2, 1, 2, 2), np.float32)])[0]
    assert out.shape == (2, 3)


def test_the_scaler_state_travels_with_the_optimizer_state():
    model, _ = prepared(schedule=False, amp={"level": "O1"})
    state = {"scale": np.array([512.0], np.float32), "incr_count": 7}
    assert compat.grad_scaler_of(model) is None
    assert compat.restore_grad_scaler(model, state) and compat.grad_scaler_of(model) is not None
    saved = compat.optimizer_state_with_scaler(model)
    optimizer_state, scaler_state = compat.split_scaler_state(saved)
    assert compat.GRAD_SCALER_KEY not in optimizer_state
    assert scaler_state is None or float(np.asarray(scaler_state["scale"]).ravel()[0]) == 512.0  # CPU scalers keep none
    assert not compat.restore_grad_scaler(prepared()[0], state)  # no AMP: nothing to restore


def test_paddle2onnx_options_are_ones_its_export_takes():
    import inspect

    paddle2onnx = pytest.importorskip("paddle2onnx")
    parameters = inspect.signature(paddle2onnx.export).parameters
    assert set(compat.paddle2onnx_export_options()) <= set(parameters) | {"enable_optimize"}


@pytest.mark.parametrize("make", [lambda p: paddle.optimizer.Momentum(0.1, parameters=p),
                                  lambda p: paddle.optimizer.Adam(0.1, parameters=p),
                                  lambda p: paddle.optimizer.AdamW(0.1, parameters=[{"params": p, "learning_rate": 0.5}])])
def test_optimizer_state_created_ahead_is_the_state_a_first_step_uses(make):
    """The accumulators exist at their initial values before any step, and the first step updates those, not new ones."""
    from hapi_runner.paddle_compat import create_optimizer_state

    layer = paddle.nn.Linear(3, 2)
    optimizer = make(layer.parameters())
    create_optimizer_state(optimizer)
    ahead = {k: v.numpy().copy() for k, v in optimizer.state_dict().items() if hasattr(v, "numpy")}
    assert ahead and all(not v.any() for k, v in ahead.items() if "moment" in k or "velocity" in k)
    assert all(np.allclose(v, 0.9) for k, v in ahead.items() if "beta1_pow" in k)
    layer(paddle.ones([4, 3])).sum().backward()
    optimizer.step()
    after = optimizer.state_dict()
    assert sorted(k for k in after if hasattr(after[k], "numpy")) == sorted(ahead)
    assert any(not np.array_equal(after[k].numpy(), ahead[k]) for k in ahead)

def test_kept_batch_norm_statistics_hold_in_train_mode_and_can_be_given_back():
    from hapi_runner.paddle_compat import keep_batch_norm_statistics

    paddle.seed(0)
    norm = paddle.nn.BatchNorm2D(3)
    norm.eval()
    batch = paddle.to_tensor(np.random.default_rng(0).normal(2.0, 3.0, (8, 3, 4, 4)).astype("float32"))
    expected = norm(batch).numpy()
    assert keep_batch_norm_statistics([paddle.nn.ReLU(), norm]) == 1
    norm.train()
    np.testing.assert_allclose(norm(batch).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(norm.state_dict()["_mean"].numpy(), np.zeros(3, "float32"))  # running statistics unchanged
    keep_batch_norm_statistics([norm], keep=False)
    out = norm(batch).numpy()
    assert abs(out.mean()) < 1e-4 and not np.allclose(out, expected, atol=0.1)  # batch statistics again
    assert not np.allclose(norm.state_dict()["_mean"].numpy(), 0.0)


@pytest.mark.parametrize("saved, current, expected", [
    ("linear_0.w_0_velocity_1", "linear_7.w_0", "linear_7.w_0_velocity_0"),  # a second optimizer's, into a fresh network
    ("linear_0.w_0_velocity_1", "linear_0.w_0", "linear_0.w_0_velocity_1"),  # the same network: kept as counted
    ("linear_0.w_0_moment1_0", "linear_3.w_0", "linear_3.w_0_moment1_0"),
])
def test_remapped_accumulators_count_from_zero_for_a_renamed_parameter(saved, current, expected):
    from hapi_runner.paddle_compat import remap_optimizer_state

    state = {saved: 1.0, "LR_Scheduler": {"last_epoch": 3}}
    out = remap_optimizer_state(state, {"fc.weight": "linear_0.w_0"}, {"fc.weight": current})
    assert out == {expected: 1.0, "LR_Scheduler": {"last_epoch": 3}}
