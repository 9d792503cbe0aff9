"""RandAugment's operations and Random Erasing's boxes: shapes, identities at magnitude 0, distributions, seeds."""

import numpy as np
import pytest

from hapi_runner.datasets import DATASETS, BatchTransform, ImageDataset, make_loader
from hapi_runner.datasets.erasing import RandomErasing
from hapi_runner.datasets.randaugment import OPS, RandAugment, apply_op

# Operations whose magnitude 0 leaves every image as it is; autocontrast and equalize have no magnitude.
IDENTITY_AT_ZERO = [name for name in OPS if name not in ("autocontrast", "equalize")]


def images(channels, n=4, side=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(20, 230, size=(n, channels, side, side)).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(OPS))
def test_each_op_keeps_shape_and_dtype(name, channels):
    image = images(channels)[0]
    out = apply_op(name, image, 9.0, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", IDENTITY_AT_ZERO)
def test_magnitude_zero_is_the_identity(name, channels):
    image = images(channels)[1]
    np.testing.assert_array_equal(apply_op(name, image, 0.0, np.random.default_rng(0)), image)


@pytest.mark.parametrize("name", [n for n in IDENTITY_AT_ZERO if n != "identity"])
def test_full_magnitude_changes_the_image(name):
    image = images(3)[2]
    assert not np.array_equal(apply_op(name, image, 10.0, np.random.default_rng(0)), image)


def test_op_arithmetic_at_known_magnitudes():
    image = images(1)[0]
    # Solarize at M=5: pixels >= 128 inverted.
    np.testing.assert_array_equal(apply_op("solarize", image, 5.0, np.random.default_rng(0)),
                                  np.where(image >= 128, 255 - image, image))
    # Posterize at M=10 keeps 4 bits.
    np.testing.assert_array_equal(apply_op("posterize", image, 10.0, np.random.default_rng(0)), image & 0xF0)
    # Translating by 45 % of 20 pixels shifts by 9 and fills with 0.
    wide = images(1, side=20)[0]
    moved = apply_op("translate_x", wide, 10.0, np.random.default_rng(0))
    shifted = [np.array_equal(moved[0, :, :11], wide[0, :, 9:]) and not moved[0, :, 11:].any(),
               np.array_equal(moved[0, :, 9:], wide[0, :, :11]) and not moved[0, :, :9].any()]
    assert any(shifted)


def test_randaugment_is_deterministic_per_seed_and_varies_per_image():
    batch = images(3, n=16)
    aug = RandAugment(9.0)
    a = aug(batch, np.random.default_rng(1))
    b = aug(batch, np.random.default_rng(1))
    c = aug(batch, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    changed = [not np.array_equal(a[i], batch[i]) for i in range(16)]
    assert 4 < sum(changed) < 16  # two ops at 0.5 each, some of them identity: most, not all, change


def test_randaugment_at_magnitude_zero_with_magnitude_ops_is_the_identity():
    batch = images(1, n=8)
    np.testing.assert_array_equal(RandAugment(0.0, op_prob=1.0, ops=IDENTITY_AT_ZERO)(batch, np.random.default_rng(0)), batch)


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="RandAugment ops must be among"):
        RandAugment(5.0, ops=["rotate", "invert"])


# -- random erasing ------------------------------------------------------------


def float_batch(n, side=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, side, side)).astype(np.float32) + 10.0


def test_erasing_probability_zero_is_the_identity():
    batch = float_batch(8)
    np.testing.assert_array_equal(RandomErasing(0.0)(batch, np.random.default_rng(0)), batch)


def test_erased_fraction_and_share_of_images_follow_the_settings():
    n, side = 4000, 32
    boxes = RandomErasing(0.5).boxes(n, side, side, np.random.default_rng(3))
    erased = boxes[:, 2] * boxes[:, 3] > 0
    assert abs(erased.mean() - 0.5) < 0.03
    fractions = boxes[erased, 2] * boxes[erased, 3] / side ** 2
    # Rounding the sides moves the area a little past the nominal (0.02, 1/3).
    assert fractions.min() >= 0.012 and fractions.max() <= 0.37
    # U(0.02, 1/3) has mean 0.177; the boxes that fit skew it only slightly.
    assert abs(fractions.mean() - 0.177) < 0.02
    ratios = boxes[erased, 2] / boxes[erased, 3]
    assert ratios.min() >= 0.2 and ratios.max() <= 5.0 and abs(np.median(np.log(ratios)) - np.log(np.sqrt(0.3 * 3.3))) < 0.1
    tops, lefts = boxes[erased, 0], boxes[erased, 1]
    assert (tops + boxes[erased, 2] <= side).all() and (lefts + boxes[erased, 3] <= side).all() and (tops >= 0).all()


def test_erased_pixels_are_standard_normal_noise_inside_the_box_only():
    batch = float_batch(64)
    rng_boxes, rng_apply = np.random.default_rng(7), np.random.default_rng(7)
    boxes = RandomErasing(1.0).boxes(64, 32, 32, rng_boxes)
    out = RandomErasing(1.0)(batch, rng_apply)
    mask = np.zeros((64, 32, 32), bool)
    for i, (top, left, h, w) in enumerate(boxes):
        mask[i, top:top + h, left:left + w] = True
    assert mask.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(out.transpose(1, 0, 2, 3)[:, ~mask], batch.transpose(1, 0, 2, 3)[:, ~mask])
    noise = out.transpose(1, 0, 2, 3)[:, mask]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.0) < 0.05
    assert out.dtype == np.float32


def test_erasing_is_deterministic_per_seed():
    batch = float_batch(16)
    a = RandomErasing(0.7)(batch, np.random.default_rng(5))
    np.testing.assert_array_equal(a, RandomErasing(0.7)(batch, np.random.default_rng(5)))
    assert not np.array_equal(a, RandomErasing(0.7)(batch, np.random.default_rng(6)))


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_both_run_inside_the_transform_and_repeat_per_epoch(pipeline):
    rng = np.random.default_rng(0)
    transform = BatchTransform(mean=(0.5,), std=(0.25,), augment="crop-flip", seed=2,
                               randaugment=RandAugment(9.0), erasing=RandomErasing(0.5))
    data = ImageDataset(rng.integers(0, 256, (32, 1, 12, 12)).astype(np.uint8), rng.integers(0, 10, 32),
                        [str(i) for i in range(10)], DATASETS["mnist"], transform)

    def epoch(number):
        transform.set_epoch(number)
        return np.concatenate([np.asarray(x) for x, _ in make_loader(data, 8, shuffle=False, pipeline=pipeline)])

    first, again, other = epoch(1), epoch(1), epoch(2)
    assert first.shape == (32, 1, 12, 12) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_ops_are_drawn_uniformly_and_applied_with_op_prob():
    # Solarize at M=10 inverts every pixel, so an image comes out inverted iff solarize ran an odd number of times.
    batch = images(1, n=4000, side=4)
    out = RandAugment(10.0, op_prob=1.0, ops=["identity", "solarize"])(batch, np.random.default_rng(0))
    inverted = (out == 255 - batch).all(axis=(1, 2, 3))
    assert abs(inverted.mean() - 0.5) < 0.03  # exactly one of two uniform draws is solarize: 1/2
    out = RandAugment(10.0, op_prob=0.5, ops=["solarize"])(batch, np.random.default_rng(1))
    inverted = (out == 255 - batch).all(axis=(1, 2, 3))
    assert abs(inverted.mean() - 0.5) < 0.03  # one of two applied ops at 0.5 each: 2 * 0.5 * 0.5
