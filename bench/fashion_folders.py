"""Fashion-MNIST as PNG class folders, for the data-check benchmarks (read from the idx files, never downloaded)."""

from __future__ import annotations

import gzip
import os
from typing import Tuple

import numpy as np
from PIL import Image

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def load_fashion(folder: str = FASHION_DIR, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, 28, 28]`` images and int64 labels from the idx files of ``folder``."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")) as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")) as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def write_png(folder: str, split: str, label: int, name: str, array: np.ndarray) -> str:
    path = os.path.join(folder, split, NAMES[label], name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, "L").save(path, "PNG")
    return path
