"""datasets/sources.py and datasets/registry.py: finding files, checksums, option refusals, the validation split, specs.

The full look-up order and download failures are in test_datasets.py; these tests add what it leaves out.
"""

import hashlib

import numpy as np
import pytest

from hapi_runner.datasets import registry, sources
from hapi_runner.datasets.registry import DATASETS, spec_for
from hapi_runner.datasets.sources import load_dataset, locate_files, md5_of, split_for_validation
from hapi_runner.errors import DataFileError, UsageError

pytestmark = pytest.mark.smoke

MNIST_TRAIN = list(registry.MNIST_FILES["train"])


def _write(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_a_folder_with_only_some_files_is_passed_over(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PADDLE_CACHE", str(tmp_path / "cache"))
    _write(tmp_path / "mine", MNIST_TRAIN[:1])  # the images without the labels
    _write(tmp_path / "cache" / "mnist", MNIST_TRAIN)
    found = locate_files(DATASETS["mnist"], "train", str(tmp_path / "mine"), download=False)
    assert found == [str(tmp_path / "cache" / "mnist" / n) for n in MNIST_TRAIN]


def test_nothing_found_lists_every_folder_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PADDLE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataFileError, match=rf"^cifar10: cifar-10-python\.tar\.gz not found in {tmp_path}/mine, "
                                            rf"{tmp_path}/cache/cifar, /usr/share/datasets/cifar10 and download is off"):
        locate_files(DATASETS["cifar10"], "train", str(tmp_path / "mine"), download=False)


def test_a_data_dir_that_is_no_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"data_dir '.*file' is not a folder; pass the folder that holds train-images"):
        locate_files(DATASETS["mnist"], "train", str(tmp_path / "file"), download=False)


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])  # empty, small, more than one read block
def test_md5_of_matches_hashlib(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    assert md5_of(str(tmp_path / "f")) == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("options, given", [(dict(image_size=64), "image_size"), (dict(val_split=0.2), "val_split"),
                                            (dict(channels=3, train_list="a.txt"), "channels")])
def test_folder_only_options_are_refused_for_a_built_in_set(options, given):
    with pytest.raises(UsageError, match=rf"^{given} is an option of the folder dataset, not of 'synthetic'; drop it"):
        load_dataset("synthetic", synthetic_size=8, **options)


def test_augment_mode_is_refused_for_a_folder(tmp_path):
    with pytest.raises(UsageError, match=r"^augment_mode 'flip' applies to the built-in datasets"):
        load_dataset("folder", data_dir=str(tmp_path), augment_mode="flip")


@pytest.mark.parametrize("name, split", [("mnits", "train"), ("mnist", "val")])
def test_unknown_dataset_or_split(name, split):
    with pytest.raises(UsageError, match=r"is not known; choose one of"):
        load_dataset(name, split, download=False)


@pytest.mark.parametrize("fraction, held", [(0.25, 10), (0.1, 4), (0.5, 20)])
def test_split_for_validation_sizes_and_determinism(fraction, held):
    train = load_dataset("synthetic", synthetic_size=40, synthetic_like="mnist")
    kept, out = split_for_validation(train, fraction, seed=3)
    assert (len(kept), len(out)) == (40 - held, held)
    # The two parts are disjoint and together the whole set.
    together = sorted(row.tobytes() for row in np.concatenate([kept.images, out.images]).reshape(40, -1))
    assert together == sorted(row.tobytes() for row in train.images.reshape(40, -1))
    again, out_again = split_for_validation(train, fraction, seed=3)
    np.testing.assert_array_equal(out_again.labels, out.labels)
    np.testing.assert_array_equal(out_again.images, out.images)
    _, other = split_for_validation(train, fraction, seed=4)
    assert not np.array_equal(other.images, out.images)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 1.0])
def test_split_for_validation_refuses_an_empty_part(fraction):
    train = load_dataset("synthetic", synthetic_size=20, synthetic_like="mnist")
    with pytest.raises(UsageError, match=r"^val_split .* of 20 samples for evaluation; choose a fraction"):
        split_for_validation(train, fraction)


@pytest.mark.parametrize("name, shape, classes", [("mnist", (1, 28), 10), ("fashion-mnist-mini", (1, 28), 10),
                                                  ("cifar10", (3, 32), 10), ("cifar100", (3, 32), 100)])
def test_dataset_shapes(name, shape, classes):
    spec = DATASETS[name]
    assert (spec.channels, spec.size, spec.num_classes) == (*shape, classes)
    assert len(spec.class_names) == classes and len(spec.mean) == len(spec.std) == spec.channels


def test_spec_for_synthetic_takes_the_shape_it_imitates_and_raw_pixels():
    spec = spec_for("synthetic", synthetic_like="cifar100")
    assert (spec.channels, spec.size, spec.num_classes, spec.class_names[-1]) == (3, 32, 100, "class_99")
    raw = spec_for("mnist", normalize=False)
    assert (raw.mean, raw.std) == ((0.0,), (1 / 255,))
    assert DATASETS["mnist"].mean == (0.1307,)  # the table itself is untouched


def test_which_datasets_read_data_dir_and_which_a_synthetic_set_imitates():
    assert registry.folder_datasets() == ["cifar10", "cifar100", "fashion-mnist", "folder", "mnist"]
    assert registry.synthetic_choices() == ["cifar10", "cifar100", "fashion-mnist", "fashion-mnist-mini", "mnist"]
