"""Finding, downloading and reading the datasets.

Files are looked for in this order: ``data_dir``, Paddle's dataset cache
(``~/.cache/paddle/dataset/<name>/``), the folder a Debian dataset package
installs (``/usr/share/datasets/<name>/``), and only then downloaded with
Paddle's own download-and-cache code and the URLs and checksums that
``paddle.vision.datasets`` uses. Reading is ours (``formats.py``): it checks
every header and size, and is much faster than Paddle's per-record parser.
"""

from __future__ import annotations

import hashlib
from importlib import resources
import os
from typing import List, Optional, Tuple

import numpy as np

from ..config.checks import check_choice
from ..errors import DataFileError, UsageError
from .formats import read_cifar, read_mnist_split
from .pipeline import BatchTransform, ImageDataset
from .registry import AUGMENTATIONS, DATASETS, DatasetSpec, spec_for

PADDLE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "paddle", "dataset")


def _file_names(spec: DatasetSpec, split: str) -> List[str]:
    if spec.format == "idx":
        return list(spec.files[split])
    return [spec.files]


def _search_dirs(spec: DatasetSpec, data_dir: Optional[str]) -> List[str]:
    dirs = [data_dir] if data_dir else []
    dirs.append(os.path.join(PADDLE_CACHE, spec.cache_name))
    if spec.debian_dir:
        dirs.append(spec.debian_dir)
    return dirs


def _paddle_download_targets(spec: DatasetSpec, split: str) -> List[Tuple[str, str]]:
    """(url, md5) pairs exactly as paddle.vision.datasets downloads them."""
    from paddle.vision import datasets as pvd
    from paddle.vision.datasets import cifar as pcifar

    if spec.format == "idx":
        cls = pvd.FashionMNIST if spec.name == "fashion-mnist" else pvd.MNIST
        prefix = "TRAIN" if split == "train" else "TEST"
        return [(getattr(cls, f"{prefix}_IMAGE_URL"), getattr(cls, f"{prefix}_IMAGE_MD5")),
                (getattr(cls, f"{prefix}_LABEL_URL"), getattr(cls, f"{prefix}_LABEL_MD5"))]
    if spec.name == "cifar10":
        return [(pcifar.CIFAR10_URL, pcifar.CIFAR10_MD5)]
    return [(pcifar.CIFAR100_URL, pcifar.CIFAR100_MD5)]


def locate_files(spec: DatasetSpec, split: str, data_dir: Optional[str] = None, download: bool = True) -> List[str]:
    """Paths of the files holding ``split`` of ``spec``, downloading if needed.

    Args:
        spec: the dataset.
        split: ``train`` or ``test``.
        data_dir: a folder searched first. Defaults to None.
        download: try Paddle's download when no folder has the files.
            Defaults to True.

    Raises:
        DataFileError: nothing found and the download failed or was off; the
            message names the files and where they may be put.
    """
    names = _file_names(spec, split)
    if data_dir and not os.path.isdir(data_dir):
        raise UsageError(f"data_dir '{data_dir}' is not a folder; pass the folder that holds {', '.join(names)}.")
    searched = _search_dirs(spec, data_dir)
    for folder in searched:
        paths = [os.path.join(folder, n) for n in names]
        if all(os.path.isfile(p) for p in paths):
            return paths
    if not download:
        raise _not_found(spec, names, searched, "download is off")
    from paddle.dataset.common import download as paddle_download

    try:
        return [paddle_download(url, spec.cache_name, md5) for url, md5 in _paddle_download_targets(spec, split)]
    # Paddle retries a failed or checksum-mismatched download and then raises RuntimeError; the cache
    # folder, the network (Paddle 2.6's requests errors are OSErrors) and the md5 pass fail with OSError.
    except (OSError, RuntimeError) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise _not_found(spec, names, searched, f"download failed ({reason})") from exc


def _not_found(spec: DatasetSpec, names: List[str], searched: List[str], problem: str) -> DataFileError:
    return DataFileError(
        f"{spec.name}: {', '.join(names)} not found in {', '.join(searched)} and {problem}; "
        f"put the files in one of those folders or pass --data-dir FOLDER."
    )


def _read_split(spec: DatasetSpec, split: str, data_dir: Optional[str], download: bool):
    """(images uint8 NCHW, labels, class_names) of one split."""
    if spec.format == "embedded":
        with resources.as_file(resources.files("hapi_runner") / "data" / spec.files) as path:
            if not path.is_file():
                raise DataFileError(f"{path}: the embedded dataset is missing from the installed package; reinstall hapi_runner.")
            with np.load(path) as data:
                key = "train" if split == "train" else "test"
                return data[f"x_{key}"], data[f"y_{key}"].astype(np.int64), [str(c) for c in data["class_names"]]
    paths = locate_files(spec, split, data_dir, download)
    try:
        if spec.format == "idx":
            images, labels = read_mnist_split(*paths)
            return images, labels, list(spec.class_names)
        return read_cifar(paths[0], spec.num_classes, split)
    except DataFileError as exc:
        raise (_cache_checksum_error(exc, paths, spec, split) or exc) from None


def _cache_checksum_error(exc: DataFileError, paths: List[str], spec: DatasetSpec, split: str) -> Optional[DataFileError]:
    """A clearer error when an unreadable file sits in Paddle's cache and fails Paddle's published MD5.

    Paddle's download checks the MD5, but a file copied into the cache by
    hand, or left there cut short by another program, never was: say so, and
    that deleting it makes the next run download it again. None when no file
    of the cache is involved or every one matches its checksum.
    """
    cache = os.path.realpath(os.path.join(PADDLE_CACHE, spec.cache_name))
    cached = [p for p in paths if os.path.dirname(os.path.realpath(p)) == cache]
    if not cached:
        return None
    try:
        published = {os.path.basename(url): md5 for url, md5 in _paddle_download_targets(spec, split)}
    except (ImportError, AttributeError):  # a Paddle without these constants: the reader's own message stands
        return None
    named = getattr(exc, "path", None)
    for path in sorted(cached, key=lambda p: p != named):  # the file the error names first
        expected = published.get(os.path.basename(path))
        if expected is None or not os.path.isfile(path):
            continue
        try:
            actual = md5_of(path)
        except OSError:  # unreadable: the reader's own message says so
            continue
        if actual == expected:
            continue
        problem = getattr(exc, "problem", None) if path == named else None
        what = problem or f"cannot be used ({exc})"
        return DataFileError(
            f"{path}: {what}; this file in Paddle's download cache does not match the MD5 checksum Paddle publishes "
            f"for it ({actual} instead of {expected}), so it is damaged or not Paddle's file: delete it "
            f"(rm '{path}') and it will be downloaded again, or put an intact copy there."
        )
    return None


def _synthetic_split(spec: DatasetSpec, split: str, size: int, seed: int):
    """Random images whose brightness depends on the label, so a model can learn a little."""
    count = size if split == "train" else max(1, size // 4)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.integers(0, spec.num_classes, size=count)
    base = (labels * (200 // spec.num_classes)).reshape(-1, 1, 1, 1)
    noise = rng.integers(0, 56, size=(count, spec.channels, spec.size, spec.size))
    return (base + noise).astype(np.uint8), labels.astype(np.int64), list(spec.class_names)


def load_dataset(name: str, split: str = "train", data_dir: Optional[str] = None, *, augment: Optional[bool] = None,
                 augment_mode: Optional[str] = None, out_size: Optional[int] = None, seed: int = 0, download: bool = True,
                 synthetic_like: str = "cifar10", synthetic_size: int = 1024, normalize: bool = True,
                 image_size: Optional[int] = None, **folder_options) -> ImageDataset:
    """Loads one split of a dataset into memory.

    Args:
        name: a dataset name (``hapi_runner.datasets.DATASETS``).
        split: ``train`` or ``test``. Defaults to ``train``.
        data_dir: a folder searched first for the files. Defaults to None.
        augment: apply the dataset's training augmentation (random crop and
            flip for Cifar; none for the MNIST family). Defaults to True for
            ``train`` and False for ``test``.
        augment_mode: the augmentation ``augment`` applies, one of
            ``hapi_runner.datasets.registry.AUGMENTATIONS``, in place of the
            dataset's own. Defaults to the dataset's own.
        out_size: pad images to this side (e.g. 32 for VGG on MNIST).
            Defaults to the dataset's own size.
        seed: seed of the augmentation and of synthetic data. Defaults to 0.
        download: allow Paddle's download when no file is found. Defaults to True.
        synthetic_like: the dataset whose shape ``synthetic`` imitates.
            Defaults to ``cifar10``.
        synthetic_size: training samples of ``synthetic`` (the test split has
            a quarter). Defaults to 1024.
        image_size: ``folder``: the side of the batches. Defaults to 224.
        **folder_options: ``folder``: further options of
            :func:`~hapi_runner.datasets.folder.load_folder_splits`
            (``channels``, ``train_list``, ``val_split``, ...).

    Returns:
        An :class:`ImageDataset`.
    """
    check_choice("dataset", name, sorted(DATASETS))
    check_choice("split", split, ("train", "test"))
    spec = spec_for(name, synthetic_like, normalize)
    if spec.format == "folder":
        from .folder import load_folder

        if augment_mode is not None:
            raise UsageError(f"augment_mode '{augment_mode}' applies to the built-in datasets; a folder trains with random "
                             f"resized crops and flips (augment=False turns them off).")
        train = split == "train" and augment is not False
        return load_folder(split, data_dir, image_size=image_size or 224, seed=seed, augment=train, **folder_options)
    if image_size is not None or folder_options:
        given = "image_size" if image_size is not None else sorted(folder_options)[0]
        raise UsageError(f"{given} is an option of the folder dataset, not of '{name}'; drop it, or load 'folder'.")
    if spec.format == "synthetic":
        images, labels, classes = _synthetic_split(spec, split, synthetic_size, seed)
    else:
        images, labels, classes = _read_split(spec, split, data_dir, download)
    if augment is None:
        augment = split == "train"
    if augment_mode is not None:
        check_choice("augment_mode", augment_mode, AUGMENTATIONS)
    mode = (augment_mode or spec.augment) if augment else "none"
    transform = BatchTransform(spec.mean, spec.std, out_size=out_size, augment=mode, seed=seed)
    return ImageDataset(images, labels, classes, spec, transform, synthetic=spec.format == "synthetic")


def split_for_validation(train: ImageDataset, fraction: float, seed: int = 0) -> Tuple[ImageDataset, ImageDataset]:
    """Holds out ``fraction`` of ``train`` (a seeded random choice) for evaluation.

    The held-out part gets an augmentation-free copy of the transform.
    """
    count = int(round(len(train) * fraction))
    if count < 1 or count >= len(train):
        raise UsageError(f"val_split {fraction} leaves {count} of {len(train)} samples for evaluation; choose a fraction that keeps both parts non-empty.")
    order = np.random.default_rng([seed, 7]).permutation(len(train))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    t = train.transform
    plain = BatchTransform((0.0,), (1.0,), out_size=t.out_size, seed=t.seed)
    plain.scale, plain.shift = t.scale, t.shift
    return train.subset(kept), train.subset(held, transform=plain)


def md5_of(path: str) -> str:
    """The md5 hex digest of a file, read in 1 MiB blocks (the checksums paddle.vision publishes are md5)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
