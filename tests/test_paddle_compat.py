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
    np.testing.assert_array_equal(norm._mean.numpy(), np.zeros(3, "float32"))  # running statistics unchanged
    keep_batch_norm_statistics([norm], keep=False)
    out = norm(batch).numpy()
    assert abs(out.mean()) < 1e-4 and not np.allclose(out, expected, atol=0.1)  # batch statistics again
    assert not np.allclose(norm._mean.numpy(), 0.0)


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
