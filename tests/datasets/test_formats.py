"""Tests of the IDX and CIFAR readers, the test-data writers, and the shipped mini dataset."""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hapi_runner.datasets.formats import read_cifar, read_idx, read_mnist_split
from hapi_runner.errors import DataFileError, UsageError

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

try:
    from tests.datafiles import (MNIST_FILES, cifar_archive_members, idx_bytes, write_cifar_archive,
                                 write_idx, write_mnist_files, write_tar_gz)
except ImportError:  # tests/ run as a plain folder (rootdir-relative imports unavailable)
    from datafiles import (MNIST_FILES, cifar_archive_members, idx_bytes, write_cifar_archive,
                           write_idx, write_mnist_files, write_tar_gz)

REPO = Path(__file__).resolve().parents[2]
MINI_NPZ = REPO / "hapi_runner" / "data" / "fashion_mnist_mini.npz"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# --- round trips -------------------------------------------------------------

@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (3, 4, 6)])
def test_idx_round_trip(tmp_path, name, shape):
    array = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    path = write_idx(tmp_path / name, array)

    result = read_idx(path)

    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_idx_raw_file_named_without_gz_may_still_be_gzip(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(array)))

    np.testing.assert_array_equal(read_idx(path), array)


def test_mnist_round_trip(tmp_path):
    written = write_mnist_files(tmp_path, n_train=40, n_test=20, seed=3, prefix="fashion-")
    assert sorted(os.listdir(tmp_path)) == sorted("fashion-" + n for n in MNIST_FILES.values())

    for split in ("train", "test"):
        images, labels = read_mnist_split(written["paths"][f"{split}_images"],
                                          written["paths"][f"{split}_labels"])
        assert images.dtype == np.uint8 and images.shape[1:] == (1, 28, 28)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[f"x_{split}"])
        np.testing.assert_array_equal(labels, written[f"y_{split}"])


def test_mnist_writer_makes_label_dependent_images(tmp_path):
    written = write_mnist_files(tmp_path, n_train=100, n_test=10)
    x, y = written["x_train"].astype(float), written["y_train"]
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    # Every class mean differs from every other one by much more than pixel noise.
    distances = np.abs(means[:, None] - means[None]).mean(axis=(2, 3, 4))
    assert distances[~np.eye(10, dtype=bool)].min() > 5


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_cifar_round_trip(tmp_path, num_classes, mode):
    path = tmp_path / f"cifar-{num_classes}-python.tar.gz"
    written = write_cifar_archive(path, num_classes=num_classes, n_train=50, n_test=20, seed=2)

    images, labels, names = read_cifar(path, num_classes, mode)

    assert images.dtype == np.uint8 and images.shape == (50 if mode == "train" else 20, 3, 32, 32)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, written[f"x_{mode}"])
    np.testing.assert_array_equal(labels, written[f"y_{mode}"])
    assert names == written["class_names"]
    if num_classes == 10:
        assert names[0] == "airplane" and names[9] == "truck"
    else:
        assert names[:2] == ["class_0", "class_1"] and len(names) == 100


@pytest.mark.parametrize("num_classes, meta, first, last", [
    (10, "cifar-10-batches-py/batches.meta", "airplane", "truck"),
    (100, "cifar-100-python/meta", "apple", "worm"),
])
def test_cifar_archive_without_label_names_uses_the_published_ones_and_warns_once(tmp_path, caplog, num_classes, meta, first, last):
    members, written = cifar_archive_members(num_classes, n_train=10, n_test=5, seed=4)
    del members[meta]
    path = write_tar_gz(tmp_path / f"cifar-{num_classes}-python.tar.gz", members)

    with caplog.at_level("WARNING", logger="hapi_runner"):
        for mode in ("train", "test"):
            images, labels, names = read_cifar(path, num_classes, mode)
            np.testing.assert_array_equal(images, written[f"x_{mode}"])
            np.testing.assert_array_equal(labels, written[f"y_{mode}"])
            assert len(names) == num_classes == len(set(names)) and (names[0], names[-1]) == (first, last)

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{path}: archive has no member '{meta}'; using the class names published with CIFAR-{num_classes}"]


def test_cifar10_train_is_split_over_five_batches(tmp_path):
    members, _ = cifar_archive_members(10, n_train=50)
    batches = [m for m in members if "data_batch_" in m]
    assert batches == [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
    assert all(len(pickle.loads(members[m], encoding="bytes")[b"labels"]) == 10 for m in batches)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 20, "mode": "train"}, "num_classes '20' is not known; choose one of: 10, 100"),
    ({"num_classes": 10, "mode": "val"}, "mode 'val' is not known; choose one of: train, test"),
])
def test_cifar_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        read_cifar(tmp_path / "cifar-10-python.tar.gz", **kwargs)


# --- corrupt files -------------------------------------------------------------
# Each builder writes a damaged file under tmp_path and returns
# (call that must fail, the file the message must name).

def _mnist(tmp_path):
    return write_mnist_files(tmp_path, n_train=20, n_test=10)["paths"]


def _truncated_gzip(tmp_path):
    paths = _mnist(tmp_path)
    path = Path(paths["train_images"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return lambda: read_mnist_split(path, paths["train_labels"]), path


def _not_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_text("<html>404 Not Found</html>\n")
    return lambda: read_idx(path), path


def _wrong_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(idx_bytes(np.zeros((2, 4, 4), np.uint8)))
    data[2] = 0x0D  # float32 element type instead of unsigned byte
    path.write_bytes(gzip.compress(bytes(data)))
    return lambda: read_idx(path), path


def _payload_too_short(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-100]))
    return lambda: read_idx(path), path


def _payload_too_long(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"\x00")
    return lambda: read_idx(path), path


def _count_mismatch(tmp_path):
    images = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8))
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    return lambda: read_mnist_split(images, labels), labels


def _swapped(tmp_path):
    paths = _mnist(tmp_path)
    return lambda: read_mnist_split(paths["train_labels"], paths["train_images"]), paths["train_labels"]


def _label_out_of_range(tmp_path):
    images = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 10, 2], np.uint8))
    return lambda: read_mnist_split(images, labels), labels


def _missing_idx(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    return lambda: read_idx(path), path


def _cifar_truncated(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return lambda: read_cifar(path, 10, "train"), path


def _cifar_not_tar(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(gzip.compress(b"just some text, not a tar archive\n" * 20))
    return lambda: read_cifar(path, 10, "test"), path


def _cifar_flipped_bit(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return lambda: read_cifar(path, 10, "test"), path


def _cifar_missing_member(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    members, _ = cifar_archive_members(10)
    del members["cifar-10-batches-py/data_batch_3"]
    write_tar_gz(path, members)
    return lambda: read_cifar(path, 10, "train"), path


def _cifar_wrong_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(path, num_classes=100)
    return lambda: read_cifar(path, 10, "test"), path


def _replace_batch(tmp_path, num_classes, member, change):
    path = tmp_path / f"cifar-{num_classes}-python.tar.gz"
    members, _ = cifar_archive_members(num_classes)
    batch = pickle.loads(members[member], encoding="bytes")
    change(batch)
    members[member] = pickle.dumps(batch, protocol=2)
    write_tar_gz(path, members)
    return path


def _cifar_wrong_shape(tmp_path):
    def cut_columns(batch):
        batch[b"data"] = batch[b"data"][:, :3000]
    path = _replace_batch(tmp_path, 10, "cifar-10-batches-py/data_batch_2", cut_columns)
    return lambda: read_cifar(path, 10, "train"), path


def _cifar_missing_key(tmp_path):
    path = _replace_batch(tmp_path, 100, "cifar-100-python/test", lambda b: b.pop(b"fine_labels"))
    return lambda: read_cifar(path, 100, "test"), path


def _cifar_label_out_of_range(tmp_path):
    def bad_label(batch):
        batch[b"labels"][4] = 10
    path = _replace_batch(tmp_path, 10, "cifar-10-batches-py/test_batch", bad_label)
    return lambda: read_cifar(path, 10, "test"), path


class _CallsAFunctionWhenUnpickled:
    def __reduce__(self):
        return (os.getcwd, ())


def _cifar_unsafe_pickle(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    members, _ = cifar_archive_members(10)
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(_CallsAFunctionWhenUnpickled(), protocol=2)
    write_tar_gz(path, members)
    return lambda: read_cifar(path, 10, "test"), path


@pytest.mark.parametrize("build, match", [
    (_truncated_gzip, "gzip data is truncated"),
    (_not_gzip, "not gzip-compressed"),
    (_wrong_magic, "bad IDX magic number 0x00000d03"),
    (_payload_too_short, r"IDX payload truncated: header says 3x28x28 = 2352 bytes, file holds 2252"),
    (_payload_too_long, r"IDX payload has trailing bytes: header says 5 = 5 bytes, file holds 6"),
    (_count_mismatch, "holds 3 labels but .* holds 4 images"),
    (_swapped, "swapped"),
    (_label_out_of_range, r"label 10 at index 1 is outside 0\.\.9"),
    (_missing_idx, "no such file"),
    (_cifar_truncated, "archive is truncated"),
    (_cifar_not_tar, "is gzip data but not a tar archive"),
    (_cifar_flipped_bit, "archive is corrupt"),
    (_cifar_missing_member, "no member 'cifar-10-batches-py/data_batch_3'"),
    (_cifar_wrong_archive, "no member 'cifar-10-batches-py/test_batch'"),
    (_cifar_wrong_shape, r"data_batch_2' has data of shape \(10, 3000\)"),
    (_cifar_missing_key, "has no key b'fine_labels'"),
    (_cifar_label_out_of_range, r"label 10 at index 4, outside 0\.\.9"),
    (_cifar_unsafe_pickle, "refusing to load"),
], ids=lambda v: v.__name__.lstrip("_") if callable(v) else "")
def test_corrupt_file_raises_one_line_naming_the_file(tmp_path, build, match):
    call, bad_path = build(tmp_path)

    with pytest.raises(DataFileError, match=match) as excinfo:
        call()

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(os.fspath(bad_path) + ": ")
    assert "; " in message  # what is wrong; what to do


# --- the shipped mini dataset --------------------------------------------------

@pytest.fixture(scope="module")
def mini():
    if not MINI_NPZ.exists():
        pytest.fail(f"{MINI_NPZ} is missing; build it with python tools/make_mini_dataset.py")
    with np.load(MINI_NPZ) as npz:  # no allow_pickle: the file must load without it
        return dict(npz)


def test_mini_dataset_layout(mini):
    assert MINI_NPZ.stat().st_size < 5 * 1024 * 1024
    assert set(mini) == {"x_train", "y_train", "x_test", "y_test", "class_names",
                         "train_index", "test_index"}
    for split, per_class in (("train", 600), ("test", 100)):
        x, y, index = mini[f"x_{split}"], mini[f"y_{split}"], mini[f"{split}_index"]
        assert x.dtype == np.uint8 and x.shape == (10 * per_class, 1, 28, 28)
        assert y.dtype == np.uint8 and y.shape == (10 * per_class,)
        assert index.dtype == np.int32 and index.shape == y.shape
        assert np.all(np.diff(index) > 0)
        np.testing.assert_array_equal(np.bincount(y, minlength=10), [per_class] * 10)
    assert mini["class_names"].tolist() == FASHION_CLASS_NAMES


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason=f"{DEBIAN_FASHION} absent (Debian package dataset-fashion-mnist)")
def test_mini_dataset_matches_debian_files(mini):
    # Only the labels file is read in full; one image is read by seeking, to stay fast.
    labels = read_idx(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(labels[mini["train_index"]], mini["y_train"])
    with gzip.open(DEBIAN_FASHION / "train-images-idx3-ubyte.gz") as f:
        f.seek(16 + 784 * int(mini["train_index"][0]))
        first = np.frombuffer(f.read(784), np.uint8).reshape(1, 28, 28)
    np.testing.assert_array_equal(mini["x_train"][0], first)
