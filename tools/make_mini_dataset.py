"""Builds hapi_runner/data/fashion_mnist_mini.npz, the embedded default dataset.

The mini set is a class-balanced random subset of the real Fashion-MNIST
train and test splits, small enough to ship inside the package so that a
first run works offline. The source is the Debian package
``dataset-fashion-mnist``, which installs the four original IDX files.

Usage::

    python tools/make_mini_dataset.py [--source DIR] [--output FILE]
        [--train-per-class 600] [--test-per-class 100] [--seed 0]

The arrays written depend only on the source files and the seed (indices are
sorted within each split); the zip container itself carries timestamps.
"""

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lets the script run from a checkout without installing the package.
sys.path.insert(0, REPO)

from hapi_runner.datasets.formats import read_mnist_split  # noqa: E402
from hapi_runner.errors import HapiRunnerError  # noqa: E402

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUTPUT = os.path.join(REPO, "hapi_runner", "data", "fashion_mnist_mini.npz")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def balanced_indices(labels, per_class, rng):
    """Picks ``per_class`` random indices of every class, returned sorted.

    Args:
        labels: Integer labels of the whole split.
        per_class: How many samples of each class to keep.
        rng: A ``numpy.random.Generator``; classes are drawn in order 0..9,
            so the result depends only on its seed.

    Returns:
        Sorted ``int32`` indices into ``labels``.

    Raises:
        ValueError: A class has fewer than ``per_class`` samples.
    """
    chosen = []
    for label in range(len(CLASS_NAMES)):
        candidates = np.flatnonzero(labels == label)
        if len(candidates) < per_class:
            raise ValueError(f"class {label} has {len(candidates)} samples, fewer than the "
                             f"{per_class} asked for; lower --train-per-class/--test-per-class")
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int32)


def build(source, per_class, seed):
    """Reads both splits from ``source`` and returns the arrays to save.

    Args:
        source: Folder holding the four Fashion-MNIST ``*-ubyte.gz`` files.
        per_class: Dict from split name (``'train'``, ``'test'``) to samples per class.
        seed: Seed of the random subset.

    Returns:
        Dict of the arrays stored in the npz.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        images_file, labels_file = SPLIT_FILES[split]
        images, labels = read_mnist_split(os.path.join(source, images_file),
                                          os.path.join(source, labels_file))
        index = balanced_indices(labels, per_class[split], rng)
        arrays[f"x_{split}"] = images[index]
        arrays[f"y_{split}"] = labels[index].astype(np.uint8)
        arrays[f"{split}_index"] = index
    # A fixed-width str array, not object dtype, so np.load needs no allow_pickle.
    arrays["class_names"] = np.array(CLASS_NAMES)
    return arrays


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help="folder with the four Fashion-MNIST .gz files (default: %(default)s)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="npz to write (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, default=600,
                        help="training images kept per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=100,
                        help="test images kept per class (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subset (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        arrays = build(args.source, {"train": args.train_per_class, "test": args.test_per_class}, args.seed)
    except (HapiRunnerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {len(arrays['y_train'])} train + {len(arrays['y_test'])} test images, "
          f"{size} bytes ({size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
