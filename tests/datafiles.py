"""Writers of small data files in the real on-disk formats, for the tests.

Tests never download: they write MNIST-style IDX files and CIFAR python
archives here, with pixel statistics that depend on the label so a tiny model
can learn something from them, then read them back through the library.
"""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np

CIFAR10_CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck"]
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# The real batches were pickled by Python 2 with protocol 2; keep the same protocol.
_PICKLE_PROTOCOL = 2


def idx_bytes(array):
    """Returns the raw (uncompressed) IDX encoding of a 1-D or 3-D uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim not in (1, 3):
        raise ValueError(f"IDX writer takes a 1-D or 3-D array, got shape {array.shape}")
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path, array):
    """Writes ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: Destination file.
        array: ``uint8`` array, 1-D (labels, magic 0x801) or 3-D (images, magic 0x803).

    Returns:
        The path written.
    """
    data = idx_bytes(array)
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _balanced_labels(rng, n, num_classes):
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _mnist_images(rng, labels):
    """Noise plus a bright horizontal band whose row depends on the label."""
    images = rng.integers(0, 64, size=(len(labels), 28, 28), dtype=np.int64)
    for i, label in enumerate(labels):
        top = 2 + 2 * int(label)
        images[i, top:top + 4, 4:24] += 150 + 5 * int(label)
    return np.clip(images, 0, 255).astype(np.uint8)


def write_mnist_files(directory, n_train=64, n_test=32, seed=0, prefix=""):
    """Writes the four gzip IDX files of an MNIST-style dataset.

    Args:
        directory: Existing folder to write into.
        n_train: Number of training images. Defaults to 64.
        n_test: Number of test images. Defaults to 32.
        seed: Seed of the random images and labels. Defaults to 0.
        prefix: Prepended to each standard file name. Defaults to ''.

    Returns:
        A dict with ``x_train``, ``y_train``, ``x_test``, ``y_test`` in the
        layout :func:`read_mnist_split` returns (``uint8`` ``[N, 1, 28, 28]``,
        ``int64`` ``[N]``), and ``paths``, a dict from the keys of
        ``MNIST_FILES`` to the files written.
    """
    rng = np.random.default_rng(seed)
    result = {"paths": {}}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _balanced_labels(rng, n, 10)
        images = _mnist_images(rng, labels)
        for kind, array in (("images", images), ("labels", labels.astype(np.uint8))):
            key = f"{split}_{kind}"
            path = os.path.join(directory, prefix + MNIST_FILES[key])
            result["paths"][key] = write_idx(path, array)
        result[f"x_{split}"] = images[:, np.newaxis]
        result[f"y_{split}"] = labels
    return result


def _cifar_images(rng, labels, num_classes):
    """Noise plus a band in one colour channel; channel, row and height depend on the label."""
    images = rng.integers(0, 64, size=(len(labels), 3, 32, 32), dtype=np.int64)
    for i, label in enumerate(labels):
        label = int(label)
        channel, top = label % 3, 2 * (label % 12)
        images[i, channel, top:top + 4 + label * 4 // num_classes, 4:28] += 150
    return np.clip(images, 0, 255).astype(np.uint8)


def _batch(images, labels, label_key, name):
    return {
        b"batch_label": name.encode(),
        label_key: [int(v) for v in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }


def cifar_archive_members(num_classes=10, n_train=50, n_test=20, seed=0):
    """Builds the members of a CIFAR python archive, without writing it.

    Tests that need a damaged archive change the returned members and write
    them with :func:`write_tar_gz`.

    Args:
        num_classes: 10 (CIFAR-10 layout) or 100 (CIFAR-100 layout). Defaults to 10.
        n_train: Number of training images; for CIFAR-10 split over
            ``data_batch_1..5``. Defaults to 50.
        n_test: Number of test images. Defaults to 20.
        seed: Seed of the random images and labels. Defaults to 0.

    Returns:
        ``(members, arrays)``: an ordered dict from member name to pickled
        bytes, and a dict with ``x_train``, ``y_train``, ``x_test``, ``y_test``
        (``uint8`` ``[N, 3, 32, 32]``, ``int64`` ``[N]``) and ``class_names``.
    """
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _balanced_labels(rng, n, num_classes)
        arrays[f"x_{split}"] = _cifar_images(rng, labels, num_classes)
        arrays[f"y_{split}"] = labels

    batches = {}
    if num_classes == 10:
        names = list(CIFAR10_CLASS_NAMES)
        root, label_key = "cifar-10-batches-py/", b"labels"
        for i, rows in enumerate(np.array_split(np.arange(n_train), 5), start=1):
            batches[f"{root}data_batch_{i}"] = _batch(
                arrays["x_train"][rows], arrays["y_train"][rows], label_key, f"training batch {i} of 5")
        batches[f"{root}test_batch"] = _batch(arrays["x_test"], arrays["y_test"], label_key, "testing batch 1 of 1")
        batches[f"{root}batches.meta"] = {b"label_names": [n.encode() for n in names],
                                          b"num_cases_per_batch": n_train // 5, b"num_vis": 3072}
    else:
        names = [f"class_{i}" for i in range(100)]
        root, label_key = "cifar-100-python/", b"fine_labels"
        for split in ("train", "test"):
            batch = _batch(arrays[f"x_{split}"], arrays[f"y_{split}"], label_key, f"{split}ing batch 1 of 1")
            batch[b"coarse_labels"] = [int(v) // 5 for v in arrays[f"y_{split}"]]
            batches[root + split] = batch
        batches[root + "meta"] = {b"fine_label_names": [n.encode() for n in names],
                                  b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]}
    arrays["class_names"] = names
    members = {name: pickle.dumps(obj, protocol=_PICKLE_PROTOCOL) for name, obj in batches.items()}
    return members, arrays


def write_tar_gz(path, members):
    """Writes a tar.gz archive holding ``members`` (a dict from name to bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar_archive(path, num_classes=10, n_train=50, n_test=20, seed=0):
    """Writes a real-format ``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz``.

    Args:
        path: Destination archive.
        num_classes: 10 or 100. Defaults to 10.
        n_train: Number of training images. Defaults to 50.
        n_test: Number of test images. Defaults to 20.
        seed: Seed of the random images and labels. Defaults to 0.

    Returns:
        The arrays written, as described in :func:`cifar_archive_members`.
    """
    members, arrays = cifar_archive_members(num_classes, n_train, n_test, seed)
    write_tar_gz(path, members)
    return arrays
