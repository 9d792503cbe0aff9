"""Mixup and CutMix per batch: the mixed images and targets, the draws' distributions, determinism, the loader."""

import numpy as np
import pytest

from hapi_runner.datasets import DATASETS, BatchTransform, ImageDataset, make_loader
from hapi_runner.datasets.mixing import BatchMixing, MixingCollate

C = 10


def batch(n=8, side=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3, side, side)).astype(np.float32), rng.integers(0, C, size=(n, 1))


def test_mixup_blends_each_image_with_its_mirror_and_the_targets_alike():
    images, labels = batch()
    mixed, targets, info = BatchMixing(C, mixup_alpha=0.4)(images, labels, np.random.default_rng(1))
    assert info["kind"] == "mixup" and 0 < info["lam"] < 1
    lam = np.float32(info["lam"])
    np.testing.assert_array_equal(mixed, images * lam + images[::-1] * (np.float32(1) - lam))
    onehot = np.eye(C, dtype=np.float32)[labels.ravel()]
    np.testing.assert_allclose(targets, lam * onehot + (1 - lam) * onehot[::-1], atol=1e-7)
    assert targets.dtype == np.float32 and targets.shape == (8, C)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_pastes_the_partners_box_and_weights_targets_by_its_area(seed):
    images, labels = batch(side=16)
    mixed, targets, info = BatchMixing(C, cutmix_alpha=1.0)(images, labels, np.random.default_rng(seed))
    assert info["kind"] == "cutmix"
    top, bottom, left, right = info["box"]
    inside = np.zeros((16, 16), bool)
    inside[top:bottom, left:right] = True
    np.testing.assert_array_equal(mixed[..., inside], images[::-1][..., inside])
    np.testing.assert_array_equal(mixed[..., ~inside], images[..., ~inside])
    area = inside.mean()
    assert info["lam"] == pytest.approx(1 - area)
    onehot = np.eye(C, dtype=np.float32)[labels.ravel()]
    np.testing.assert_allclose(targets, (1 - area) * onehot + area * onehot[::-1], atol=1e-6)


def test_the_cutmix_box_covers_about_one_minus_lambda_before_clipping():
    from hapi_runner.datasets.mixing import cutmix_box

    rng = np.random.default_rng(0)
    for lam in (0.1, 0.5, 0.9):
        boxes = [cutmix_box(100, 100, lam, rng) for _ in range(400)]
        areas = np.array([(b - t) * (r - l) / 1e4 for t, b, l, r in boxes])
        assert areas.max() <= 1 - lam + 0.02  # the unclipped box, up to int rounding
        assert np.mean(areas) < 1 - lam  # clipping only shrinks it


@pytest.mark.parametrize("kwargs", [dict(mixup_alpha=1.0, prob=0.0), dict(), dict(cutmix_alpha=1.0, prob=0.0)])
def test_no_mixing_is_the_identity_with_one_hot_targets(kwargs):
    images, labels = batch()
    mixed, targets, info = BatchMixing(C, **kwargs)(images, labels, np.random.default_rng(0))
    assert info["kind"] == "none"
    np.testing.assert_array_equal(mixed, images)
    np.testing.assert_array_equal(targets, np.eye(C, dtype=np.float32)[labels.ravel()])


def test_mix_prob_and_switch_prob_choose_as_asked():
    mixing = BatchMixing(C, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6, switch_prob=0.5)
    rng = np.random.default_rng(0)
    kinds = [mixing.draw(rng)[0] for _ in range(4000)]
    mixed = sum(k != "none" for k in kinds) / 4000
    cut = sum(k == "cutmix" for k in kinds) / max(1, sum(k != "none" for k in kinds))
    assert abs(mixed - 0.6) < 0.03 and abs(cut - 0.5) < 0.03


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_lambda_follows_beta(alpha):
    rng = np.random.default_rng(5)
    draws = np.array([BatchMixing(C, mixup_alpha=alpha).draw(rng)[1] for _ in range(4000)])
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
    assert abs(draws.mean() - 0.5) < 0.02
    assert draws.var() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.06)
    stats = pytest.importorskip("scipy.stats")
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 0.01


def loader_data(n=64, seed=3):
    rng = np.random.default_rng(0)
    transform = BatchTransform(mean=(0.5,), std=(0.25,), augment="crop-flip", seed=seed)
    return ImageDataset(rng.integers(0, 256, (n, 1, 8, 8)).astype(np.uint8), rng.integers(0, C, n),
                        [str(i) for i in range(C)], DATASETS["mnist"], transform)


def epoch_batches(data, epoch, pipeline="batched"):
    loader = make_loader(data, 16, shuffle=False, pipeline=pipeline,
                         mixing=BatchMixing(C, mixup_alpha=0.5, cutmix_alpha=1.0))
    data.transform.set_epoch(epoch)
    return [(np.asarray(x), np.asarray(y)) for x, y in loader]


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_the_loader_mixes_deterministically_per_seed_epoch_and_batch(pipeline):
    data = loader_data()
    first, again, other = epoch_batches(data, 2, pipeline), epoch_batches(data, 2, pipeline), epoch_batches(data, 3, pipeline)
    assert len(first) == 4
    for (xa, ya), (xb, yb) in zip(first, again):
        assert ya.dtype == np.float32 and ya.shape == (16, C)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(first, other))


def test_a_batchs_draw_depends_on_its_number_not_on_earlier_batches():
    collate = MixingCollate(lambda s: s, BatchMixing(C, mixup_alpha=1.0), seed=4)
    a = collate.mixing.draw(collate.rng_for(1, 0, 3))
    b = collate.mixing.draw(collate.rng_for(1, 0, 3))
    c = collate.mixing.draw(collate.rng_for(1, 0, 2))
    assert a == b and a != c


def test_the_loader_holds_the_transform_it_reseeds_and_evaluation_refuses_mixing():
    data = loader_data()
    loader = make_loader(data, 16, shuffle=True, mixing=BatchMixing(C, mixup_alpha=1.0))
    assert loader.transform is data.transform
    with pytest.raises(ValueError, match="mixing is for training batches"):
        make_loader(data, 16, shuffle=False, evaluation=True, mixing=BatchMixing(C, mixup_alpha=1.0))


def test_the_log_line_says_what_training_accuracy_means():
    line = BatchMixing(C, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.5).describe()
    assert line.startswith("batch mixing: mixup alpha 0.8 and cutmix alpha 1 on 50% of the training batches, cutmix for 50%")
    assert "dominant label" in line
    assert BatchMixing(C).describe() == "batch mixing: off"
