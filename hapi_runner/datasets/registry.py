"""What each dataset is: shape, classes, statistics, and the files that hold it.

No Paddle import here, so names can be checked before Paddle is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))
# The label names published with the archives (their batches.meta and meta members), in label order;
# used when an archive comes without that member.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


# How images become batches (hapi_runner.datasets.pipeline): numpy transforms per batch, or per image.
PIPELINES = ("batched", "per-sample")

# The training augmentations of the in-memory datasets (hapi_runner.datasets.pipeline.BatchTransform): a
# DatasetSpec's ``augment`` names its own, and --train-augment may choose another.
AUGMENTATIONS = ("none", "flip", "crop-flip")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset.

    Attributes:
        name: the name on the command line.
        channels, size: image shape is ``channels x size x size``.
        num_classes: number of labels.
        mean, std: per-channel statistics on the 0-1 scale (pixel / 255),
            computed on the training split.
        format: ``idx`` (MNIST-style gzip files), ``cifar`` (python tar.gz),
            ``embedded`` (shipped in the package), ``synthetic`` or ``folder``
            (image files: :mod:`hapi_runner.datasets.folder`).
        files: file names looked for, per split (``idx``) or the archive name.
        cache_name: the folder under Paddle's dataset cache.
        debian_dir: the folder a Debian dataset package installs into.
        augment: the training augmentation used by default (``none`` or
            ``crop-flip``: 4-pixel padded random crop and horizontal flip).
    """

    name: str
    channels: int
    size: int
    num_classes: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    format: str
    files: object = None
    cache_name: Optional[str] = None
    debian_dir: Optional[str] = None
    augment: str = "none"
    class_names: Optional[Tuple[str, ...]] = None

    @property
    def reads_data_dir(self) -> bool:
        """Whether ``--data-dir`` means anything here: the images come from files, not from the package or a generator."""
        return self.format not in ("embedded", "synthetic")


DATASETS: Dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", 1, 28, 10, (0.1307,), (0.3081,), "idx", MNIST_FILES, "mnist",
        "/usr/share/datasets/mnist", class_names=DIGIT_CLASSES,
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,), "idx", MNIST_FILES, "fashion-mnist",
        "/usr/share/datasets/fashion-mnist", class_names=FASHION_CLASSES,
    ),
    "fashion-mnist-mini": DatasetSpec(
        "fashion-mnist-mini", 1, 28, 10, (0.2860,), (0.3530,), "embedded", "fashion_mnist_mini.npz",
        class_names=FASHION_CLASSES,
    ),
    "cifar10": DatasetSpec(
        "cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar",
        "cifar-10-python.tar.gz", "cifar", "/usr/share/datasets/cifar10", augment="crop-flip",
        class_names=CIFAR10_CLASSES,
    ),
    "cifar100": DatasetSpec(
        "cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar",
        "cifar-100-python.tar.gz", "cifar", "/usr/share/datasets/cifar100", augment="crop-flip",
        class_names=CIFAR100_CLASSES,
    ),
    # Shape and statistics are filled from ``synthetic_like`` at load time.
    "synthetic": DatasetSpec("synthetic", 3, 32, 10, (0.5,), (0.25,), "synthetic"),
    # Your own images (``--data-dir``, ``--train-list``): classes, channels and statistics are known once the
    # folder is read (hapi_runner.datasets.folder); these are the defaults: RGB at 224, ImageNet statistics.
    "folder": DatasetSpec("folder", 3, 224, 0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "folder",
                          augment="random-resized-crop"),
}


def folder_datasets():
    """The datasets that read their files from ``--data-dir``, sorted."""
    return sorted(n for n, s in DATASETS.items() if s.reads_data_dir)


def synthetic_choices():
    """The datasets whose shape a synthetic set can imitate."""
    return sorted(n for n, s in DATASETS.items() if s.format not in ("synthetic", "folder"))


def spec_for(name: str, synthetic_like: str = "cifar10", normalize: bool = True) -> DatasetSpec:
    """The spec of ``name``; a synthetic set takes the shape of ``synthetic_like``.

    With ``normalize=False`` the statistics become mean 0 and std 1/255 (0-1
    scale), so the model sees raw 0-255 pixel values, as seed 002's
    ``Transpose()``-only pipeline feeds them; the export's sidecar says the same.
    """
    spec = DATASETS[name]
    if spec.format == "synthetic":
        like = DATASETS[synthetic_like]
        spec = DatasetSpec(
            "synthetic", like.channels, like.size, like.num_classes, like.mean, like.std, "synthetic",
            augment=like.augment, class_names=tuple(f"class_{i}" for i in range(like.num_classes)),
        )
    if not normalize:
        spec = replace(spec, mean=(0.0,) * spec.channels, std=(1.0 / 255.0,) * spec.channels)
    return spec
