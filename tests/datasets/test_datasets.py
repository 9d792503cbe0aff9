"""Dataset lookup order, loading from files in the real formats, and the batched pipeline."""

import re
import shutil

import numpy as np
import pytest

from hapi_runner import DataFileError
from hapi_runner.errors import UsageError
from hapi_runner.datasets import BatchTransform, load_dataset, make_loader, split_for_validation
from hapi_runner.datasets import sources

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run


@pytest.mark.parametrize("name, shape, classes", [
    ("mnist", (1, 28, 28), 10), ("fashion-mnist", (1, 28, 28), 10),
    ("cifar10", (3, 32, 32), 10), ("cifar100", (3, 32, 32), 100),
])
def test_load_from_data_dir(data_root, name, shape, classes):
    train = load_dataset(name, "train", str(data_root / name), download=False)
    test = load_dataset(name, "test", str(data_root / name), download=False)
    assert train.images.shape[1:] == shape and train.images.dtype == np.uint8
    assert len(test) == 16 and len(train.class_names) == classes
    image, label = train[0]
    assert image.shape == shape and image.dtype == np.float32 and label.shape == (1,)


def test_lookup_order_data_dir_then_cache_then_debian(data_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    debian = tmp_path / "debian"
    shutil.copytree(data_root / "mnist", cache / "mnist")
    shutil.copytree(data_root / "fashion-mnist", debian)
    monkeypatch.setattr(sources, "PADDLE_CACHE", str(cache))
    spec = sources.DATASETS["mnist"]
    assert sources.locate_files(spec, "train", str(data_root / "fashion-mnist"), download=False)[0].startswith(str(data_root / "fashion-mnist"))
    assert sources.locate_files(spec, "train", None, download=False)[0].startswith(str(cache / "mnist"))
    monkeypatch.setitem(sources.DATASETS, "mnist", spec.__class__(**{**spec.__dict__, "debian_dir": str(debian)}))
    shutil.rmtree(cache)
    assert sources.locate_files(sources.DATASETS["mnist"], "test", None, download=False)[0].startswith(str(debian))


def test_nothing_found_names_files_and_folders(tmp_path):
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz not found in .*download is off"):
        load_dataset("mnist", "test", str(tmp_path), download=False)


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    import paddle.dataset.common as common

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(common, "download", offline)
    with pytest.raises(DataFileError, match="download failed \\(ConnectionError: no network\\)"):
        load_dataset("cifar100", "train", str(tmp_path), download=True)


def test_embedded_default_is_real_fashion_mnist_subset():
    train = load_dataset("fashion-mnist-mini", "train")
    test = load_dataset("fashion-mnist-mini", "test")
    assert len(train) == 6000 and len(test) == 1000
    assert np.bincount(train.labels).tolist() == [600] * 10
    assert train.class_names[0] == "T-shirt/top"


def test_synthetic_takes_the_shape_it_imitates():
    data = load_dataset("synthetic", "train", synthetic_like="cifar100", synthetic_size=40)
    assert data.synthetic and data.images.shape == (40, 3, 32, 32) and len(data.class_names) == 100


def test_val_split_holds_out_part_of_train_without_augmentation(data_root):
    train = load_dataset("cifar10", "train", str(data_root / "cifar10"), download=False)
    kept, held = split_for_validation(train, 0.25, seed=0)
    assert len(held) == 10 and len(kept) == 30
    assert train.transform.augment == "crop-flip" and held.transform.augment == "none"
    np.testing.assert_array_equal(held[0][0], held[0][0])  # deterministic: no random crop


def test_normalisation_uses_the_dataset_statistics():
    t = BatchTransform(mean=(0.5,), std=(0.25,))
    out = t(np.array([[[[0, 255]]]], dtype=np.uint8))
    np.testing.assert_allclose(out.ravel(), [-2.0, 2.0], rtol=1e-6)


def test_padding_to_model_size_is_centred_zeros():
    t = BatchTransform(mean=(0.0,), std=(1.0,), out_size=32)
    out = t(np.full((1, 1, 28, 28), 255, np.uint8))
    assert out.shape == (1, 1, 32, 32)
    assert out[0, 0, 2:30, 2:30].min() == 1.0 and out[0, 0, :2].max() == 0.0 and out[0, 0, 30:].max() == 0.0


def test_crop_flip_draws_every_offset_and_flips_half():
    t = BatchTransform(mean=(0.0,), std=(1.0,), augment="crop-flip", seed=3)
    image = np.random.default_rng(0).integers(1, 255, size=(1, 1, 8, 8)).astype(np.uint8)
    out = np.round(t(np.repeat(image, 3600, axis=0)) * 255).astype(np.uint8)
    # Every (top, left, flip) a 4-pixel padded crop can take, and the image each gives.
    padded = np.pad(image[0, 0], 4)
    combos = [(top, left, flip) for top in range(9) for left in range(9) for flip in (False, True)]
    expected = np.stack([padded[tp:tp + 8, lf:lf + 8][:, ::-1] if fl else padded[tp:tp + 8, lf:lf + 8] for tp, lf, fl in combos])
    match = (out[:, 0][:, None] == expected[None]).all(axis=(2, 3))
    assert (match.sum(axis=1) == 1).all()  # each output is exactly one legal crop
    counts = match.sum(axis=0)
    assert (counts > 0).all()  # 162 outcomes, 3600 draws: every one appears
    assert counts.max() < 3 * counts.mean()
    flips = sum(c for c, (_, _, fl) in zip(counts, combos) if fl) / counts.sum()
    assert 0.45 < flips < 0.55


def test_same_seed_and_epoch_give_the_same_batches(data_root):
    data = load_dataset("cifar10", "train", str(data_root / "cifar10"), download=False, seed=5)
    loader = make_loader(data, 8, shuffle=True)

    def epoch_batches(epoch):
        loader.batch_sampler.set_epoch(epoch)
        data.transform.set_epoch(epoch)
        return [np.array(x) for x, _ in loader]

    a, b, c = epoch_batches(1), epoch_batches(1), epoch_batches(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert sum(len(x) for x in a) == len(data)


@pytest.mark.parametrize("error", [ConnectionError("[Errno 101] Network is unreachable"),
                                   RuntimeError("Cannot download https://example.invalid/t.gz within retry limit 3")])
def test_a_failed_download_says_why_and_keeps_the_cause(tmp_path, monkeypatch, error):
    import paddle.dataset.common

    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr(paddle.dataset.common, "download", offline)
    monkeypatch.setitem(sources.DATASETS, "mnist", sources.DATASETS["mnist"].__class__(
        **{**sources.DATASETS["mnist"].__dict__, "debian_dir": str(tmp_path / "no-debian")}))
    with pytest.raises(DataFileError, match=re.escape(f"download failed ({type(error).__name__}: {error}); put the files")) as caught:
        sources.locate_files(sources.DATASETS["mnist"], "train", None, download=True)
    assert caught.value.__cause__ is error


def test_a_programming_error_in_the_download_is_not_reported_as_missing_files(tmp_path, monkeypatch):
    import paddle.dataset.common

    def broken(*args, **kwargs):
        raise TypeError("download() got an unexpected keyword argument")

    monkeypatch.setattr(paddle.dataset.common, "download", broken)
    monkeypatch.setitem(sources.DATASETS, "mnist", sources.DATASETS["mnist"].__class__(
        **{**sources.DATASETS["mnist"].__dict__, "debian_dir": str(tmp_path / "no-debian")}))
    with pytest.raises(TypeError, match="unexpected keyword"):
        sources.locate_files(sources.DATASETS["mnist"], "train", None, download=True)


def test_a_cifar_archive_without_its_names_loads_with_the_published_ones(tmp_path, caplog):
    from datafiles import cifar_archive_members, write_tar_gz
    from hapi_runner.datasets.registry import CIFAR10_CLASSES

    members, written = cifar_archive_members(10, n_train=10, n_test=5, seed=5)
    del members["cifar-10-batches-py/batches.meta"]
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    train = load_dataset("cifar10", "train", str(tmp_path), download=False)
    test = load_dataset("cifar10", "test", str(tmp_path), download=False)
    assert train.class_names == test.class_names == list(CIFAR10_CLASSES)
    np.testing.assert_array_equal(test.images, written["x_test"])
    assert [r.levelname for r in caplog.records if "cifar-10-python.tar.gz" in r.getMessage()] == ["WARNING"]


def test_flip_mirrors_about_half_and_never_shifts():
    t = BatchTransform(mean=(0.0,), std=(1.0,), augment="flip", seed=4)
    image = np.random.default_rng(1).integers(1, 255, size=(1, 1, 6, 6)).astype(np.uint8)
    out = np.round(t(np.repeat(image, 2000, axis=0)) * 255).astype(np.uint8)[:, 0]
    plain = (out == image[0, 0]).all(axis=(1, 2))
    mirrored = (out == image[0, 0][:, ::-1]).all(axis=(1, 2))
    assert (plain ^ mirrored).all()  # every output is the image or its mirror, nothing else
    assert 0.46 < mirrored.mean() < 0.54


def test_augment_mode_replaces_the_datasets_own_augmentation(data_root):
    mnist_like = load_dataset("fashion-mnist-mini", "train")
    flipped = load_dataset("fashion-mnist-mini", "train", augment_mode="crop-flip")
    cifar_plain = load_dataset("cifar10", "train", str(data_root / "cifar10"), download=False, augment_mode="none")
    test = load_dataset("fashion-mnist-mini", "test", augment_mode="flip")
    assert (mnist_like.transform.augment, flipped.transform.augment, cifar_plain.transform.augment) == ("none", "crop-flip", "none")
    assert test.transform.augment == "none"  # a test split is never augmented


def test_augment_mode_checks():
    with pytest.raises(UsageError, match="choose one of: none, flip, crop-flip"):
        load_dataset("fashion-mnist-mini", "train", augment_mode="mirror")
    with pytest.raises(UsageError, match="applies to the built-in datasets"):
        load_dataset("folder", "train", "/nonexistent", augment_mode="flip")


def test_train_augment_reaches_the_runners_training_set_only(data_root, tmp_path):
    from hapi_runner import Runner
    from conftest import tiny_config

    runner = Runner(tiny_config(data_root, tmp_path, dataset="fashion-mnist-mini", train_augment="crop-flip", model="lenet"))
    assert runner.train_data.transform.augment == "crop-flip" and runner.eval_data.transform.augment == "none"
