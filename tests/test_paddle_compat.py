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
