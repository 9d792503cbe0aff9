"""Your own images as a dataset: class folders or file lists, decoded once into a cache, cropped per batch.

``load_folder_splits`` is the whole path from a folder to the training and
validation datasets; ``load_folder`` gives one of them. Both return
:class:`FolderDataset`, an :class:`~hapi_runner.datasets.pipeline.ImageDataset`
whose ``images`` are the decoded (cached) images of every size and whose
``transform`` is a :class:`~hapi_runner.datasets.folder_transform.CropTransform`,
so ``make_loader`` gives ``[N, C, S, S]`` float32 batches as for the built-in
datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..config.checks import check_bool, check_choice, check_int, check_number, check_path, parse_size
from ..training.distributed import on_main
from ..errors import DataFileError, DataLayoutError, UsageError
from .file_duplicates import leakage_note
from .folder_scan import FileSet, find_folders, read_file_list, scan_class_folders, stratified_split
from .image_sizes import median_short_side, size_note
from .folder_transform import CROP_PCT, CropTransform, imagenet_stats, resize_short_for, stats_from_sums
from .image_cache import DecodeReport, decode_once
from .pipeline import ImageDataset
from .registry import DatasetSpec

NORMALIZE_STATS = ("imagenet", "data")


class FolderDataset(ImageDataset):
    """An :class:`ImageDataset` of decoded image files of any size.

    Attributes (beyond ImageDataset's):
        images: a store indexed like an array (``images[idx]`` is a list of
            uint8 ``[H, W, C]``), read from the cache or decoded per access.
        paths: the file of each sample.
    """

    def __init__(self, images, labels, class_names, spec, transform: CropTransform, paths):
        super().__init__(images, labels, class_names, spec, transform)
        self.paths = list(paths)

    @property
    def sample_shape(self):
        return [self.transform.channels, self.transform.out_size, self.transform.out_size]

    def subset(self, indices, transform: Optional[CropTransform] = None) -> "FolderDataset":
        indices = np.asarray(indices, dtype=np.int64)
        return FolderDataset(self.images.subset(indices), self.labels[indices], self.class_names, self.spec,
                             transform or self.transform, [self.paths[i] for i in indices])


@dataclass
class FolderSplits:
    """What :func:`load_folder_splits` returns.

    Attributes:
        train, val: the datasets (``val`` augmentation-free).
        notes: lines for the user; the first says what was loaded, and how
            the validation part was chosen.
        bad_images: ``(path, reason)`` of every file skipped (``skip_bad_images``).
        preprocessing: evaluation's resize, crop and statistics, for the export's sidecar.
    """

    train: FolderDataset
    val: Optional[FolderDataset]
    notes: List[str] = field(default_factory=list)
    bad_images: List[Tuple[str, str]] = field(default_factory=list)
    preprocessing: Dict[str, object] = field(default_factory=dict)


def _check_options(*, image_size, channels, val_split, normalize_stats, skip_bad_images, cache_limit, num_workers, crop_pct):
    """The options of :func:`load_folder`, a public function: a caller of the Python API has no TrainConfig to check them."""
    check_int("image_size", image_size, minimum=8)
    check_choice("channels", channels, (1, 3))
    check_number("val_split", val_split, 0.0, 1.0, low_open=True, high_open=True)
    check_choice("normalize_stats", normalize_stats, NORMALIZE_STATS)
    check_bool("skip_bad_images", skip_bad_images)
    if cache_limit is not None:
        check_int("cache_limit", cache_limit, minimum=0, unit="bytes; 0 never caches")
    check_int("num_workers", num_workers, minimum=0)
    check_number("crop_pct", crop_pct, 0.0, 1.0, low_open=True)


def _file_sets(data_dir: Optional[str], train_list: Optional[str], val_list: Optional[str]) -> Tuple[FileSet, Optional[FileSet]]:
    check_path("data_dir", data_dir)
    check_path("train_list", train_list)
    check_path("val_list", val_list)
    if train_list:
        root = data_dir or os.path.dirname(os.path.abspath(train_list))
        if not os.path.isdir(root):
            raise UsageError(f"data_dir '{root}' is not a folder; pass the folder the listed paths are relative to.")
        train = read_file_list(train_list, root)
        return train, read_file_list(val_list, root, train.class_names) if val_list else None
    if val_list:
        raise UsageError("val_list needs a train_list too; pass both lists, or neither to read data_dir/train and data_dir/val.")
    if not data_dir:
        raise UsageError("a folder dataset needs data_dir (holding train/<class>/...) or train_list.")
    train_dir, val_dir = find_folders(data_dir)
    train = scan_class_folders(train_dir)
    return train, scan_class_folders(val_dir, train.class_names) if val_dir else None


def _bad_files(pairs: List[Tuple[FileSet, DecodeReport]]) -> List[Tuple[str, str]]:
    return [(files.paths[i], reason) for files, report in pairs for i, reason in sorted(report.bad.items())]


def _refuse_bad(bad: List[Tuple[str, str]]) -> None:
    path, reason = bad[0]
    reason = " ".join(reason.split())  # Pillow's messages may span lines; the error is one
    more = f"; {len(bad) - 1} more bad images found" if len(bad) > 1 else ""
    raise DataFileError(f"{path}: cannot be read as an image ({reason}){more}; replace or remove the bad files, "
                        f"or pass --skip-bad-images (skip_bad_images=True) to train without them.")


def _good(files: FileSet, report: DecodeReport) -> Tuple[FileSet, object, Optional[np.ndarray]]:
    """The readable part: files, image store and stats rows."""
    keep = np.asarray([i for i in range(len(files.paths)) if i not in report.bad], dtype=np.int64)
    return files.subset(keep), report.images.subset(keep), None if report.stats is None else report.stats[keep]


def _check_classes_left(files: FileSet) -> None:
    """Skipping bad images may leave a training class empty."""
    counts = np.bincount(files.labels, minlength=len(files.class_names))
    if (counts == 0).any():
        name = files.class_names[int(np.argmin(counts))]
        raise DataFileError(f"{files.origin}: class '{name}' has no readable training images once the bad ones are "
                            f"skipped; add readable images of it.")


def _dataset(files: FileSet, store, transform: CropTransform, spec: DatasetSpec) -> FolderDataset:
    return FolderDataset(store, files.labels, files.class_names, spec, transform, files.paths)


def _split(reports, val_split: float, seed: int):
    """``(train files, store, stats), (val files, store), note``: the readable files, split when there is no validation set."""
    train_files, train_store, train_stats = _good(*reports[0])
    _check_classes_left(train_files)
    if len(reports) > 1:
        val_files, val_store, _ = _good(*reports[1])
        return (train_files, train_store, train_stats), (val_files, val_store), ""
    kept, held = stratified_split(train_files.labels, val_split, seed)
    note = f" (validation: a stratified {val_split * 100:g}% of {train_files.origin}, seed {seed}; no validation folder or list)"
    kept_stats = None if train_stats is None else train_stats[kept]
    return ((train_files.subset(kept), train_store.subset(kept), kept_stats),
            (train_files.subset(held), train_store.subset(held)), note)


def _describe(train: FolderDataset, val: Optional[FolderDataset], origin: str, split_note: str) -> str:
    t = train.transform
    size = f"{t.out_size}x{t.out_size}"
    centre = f"short side {t.resize_short}, centre {size}"
    # Without augmentation training takes evaluation's crop (CropTransform with train=False), and says so.
    training = "random resized crop and flip" if t.train else f"no augmentation, {centre} as in evaluation"
    stats = ", ".join(f"{m:.3f}/{s:.3f}" for m, s in zip(t.mean, t.std))
    return (f"folder {origin}: {len(train.class_names)} classes, {len(train)} training and "
            f"{len(val) if val is not None else 0} validation images{split_note}; {t.channels} channel(s) at {size}, "
            f"mean/std {stats} (training: {training}; evaluation: {centre}, crop_pct {t.crop_pct:g}, bilinear)")


def load_folder_splits(data_dir: Optional[str] = None, *, train_list: Optional[str] = None,
                       val_list: Optional[str] = None, image_size: int = 224, channels: int = 3,
                       val_split: float = 0.1, normalize_stats: str = "imagenet", skip_bad_images: bool = False,
                       cache_limit: Optional[int] = None, num_workers: int = 0, seed: int = 0,
                       augment: bool = True, crop_pct: float = CROP_PCT, cache_root: Optional[str] = None) -> FolderSplits:
    """Training and validation datasets from ``data_dir/train|val/<class>/`` or from file lists.

    Args:
        data_dir: holds ``train/<class>/**`` and optionally ``val/``,
            ``valid/``, ``validation/`` or ``test/`` (the first found); with
            lists, the folder their paths are relative to. Defaults to None
            (then ``train_list`` is needed, paths relative to its folder).
        train_list, val_list: PaddleClas lists or CSV files. Default to None.
        image_size: the side ``S`` of the batches. Defaults to 224.
        channels: 1 or 3. Defaults to 3.
        val_split: without a validation folder or list, the stratified
            fraction of training images held out. Defaults to 0.1.
        normalize_stats: ``imagenet`` or ``data`` (computed on the training
            images). Defaults to ``imagenet``.
        skip_bad_images: leave out unreadable files (listed in
            ``bad_images``) instead of stopping. Defaults to False.
        cache_limit: bytes a new image cache may take; 0 never caches.
            Defaults to None: the free disk less 10% of its size.
        num_workers: processes decoding the first pass. Defaults to 0.
        seed: seed of the split and of the crops. Defaults to 0.
        augment: random crops and flips for training. Defaults to True.
        crop_pct: evaluation's centre crop over its resized short side. Defaults to 0.875.
        cache_root: the cache folder. Defaults to ``$HAPI_RUNNER_CACHE`` or ``~/.cache/hapi_runner``.

    Raises:
        UsageError: a bad option or a layout that is not a folder dataset.
        DataFileError: a bad list line, a missing or unreadable file (unless
            skipped), an empty class folder, a single class, a validation
            class training lacks; one line each.
    """
    _check_options(image_size=image_size, channels=channels, val_split=val_split, normalize_stats=normalize_stats,
                   skip_bad_images=skip_bad_images, cache_limit=cache_limit, num_workers=num_workers, crop_pct=crop_pct)
    check_bool("augment", augment)
    train_files, val_files = _file_sets(data_dir, train_list, val_list)
    decode = dict(cache_limit=cache_limit, num_workers=num_workers, root=cache_root, with_stats=normalize_stats == "data")
    reports = [(files, decode_once(files.paths, channels, resize_short_for(image_size, crop_pct), **decode))
               for files in (train_files, val_files) if files is not None]
    bad = _bad_files(reports)
    if bad and not skip_bad_images:
        _refuse_bad(bad)
    (train_files, train_store, train_stats), (val_files, val_store), split_note = _split(reports, val_split, seed)
    mean, std = stats_from_sums(train_stats) if normalize_stats == "data" else imagenet_stats(channels)
    transform = CropTransform(mean, std, image_size, channels, train=augment, crop_pct=crop_pct, seed=seed)
    spec = DatasetSpec("folder", channels, image_size, len(train_files.class_names), tuple(mean), tuple(std), "folder",
                       files=train_files.origin, augment="random-resized-crop" if augment else "none",
                       class_names=tuple(train_files.class_names))
    train = _dataset(train_files, train_store, transform, spec)
    val = _dataset(val_files, val_store, transform.evaluation(), spec) if len(val_files.paths) else None
    notes = [_describe(train, val, data_dir or train_files.origin, split_note)]
    notes += [note for _, report in reports for note in report.notes]
    notes += [note for note in [size_note(image_size, median_short_side(train_files.paths))] if note]
    if bad:
        notes.append(f"skipped {len(bad)} unreadable image(s) (skip_bad_images), the first: {bad[0][0]}")
    notes += leakage_note(train_files.paths, val_files.paths)
    return FolderSplits(train, val, notes, bad, transform.evaluation().preprocessing())


def load_folder(split: str = "train", data_dir: Optional[str] = None, **options) -> FolderDataset:
    """One split of :func:`load_folder_splits`: ``train``, or ``test``/``val`` (the validation part).

    Takes :func:`load_folder_splits`' keyword options; ``augment`` applies to
    ``train`` only (``test`` is never augmented).
    """
    check_choice("split", split, ("train", "test", "val"))
    splits = load_folder_splits(data_dir, **options)
    if split == "train":
        return splits.train
    if splits.val is None:
        raise DataLayoutError(f"{data_dir}: the validation part is empty; add validation images or raise val_split.")
    return splits.val


def folder_options(config, num_workers: int = 0) -> Dict[str, object]:
    """The keyword options of :func:`load_folder_splits` that a ``TrainConfig`` of ``dataset="folder"`` describes.

    Unset fields take the folder defaults: 224 pixels, 3 channels, ImageNet
    statistics, and a validation split of 0.1 when there is no validation
    folder or list.

    Args:
        config: a ``TrainConfig`` (read by attribute).
        num_workers: processes decoding the first pass. Defaults to 0.
    """
    return dict(train_list=config.train_list, val_list=config.val_list, image_size=config.image_size or 224,
                channels=config.channels or 3, val_split=config.val_split or 0.1,
                normalize_stats=config.normalize_stats or "imagenet", skip_bad_images=config.skip_bad_images,
                cache_limit=parse_size("cache_limit", config.cache_limit), num_workers=num_workers, seed=config.seed,
                augment=config.augment, crop_pct=config.eval_crop_pct)


def list_folder_files(data_dir: Optional[str] = None, train_list: Optional[str] = None,
                      val_list: Optional[str] = None) -> Tuple[FileSet, Optional[FileSet]]:
    """``(training files, validation files or None)`` of a folder dataset, listed as training lists them (nothing decoded).

    Raises:
        UsageError, DataFileError: as :func:`load_folder_splits`.
    """
    return _file_sets(data_dir, train_list, val_list)


def folder_class_names(config) -> List[str]:
    """The class names a folder run of ``config`` would train on, from its folders or list alone (nothing is decoded)."""
    return _file_sets(config.data_dir, config.train_list, config.val_list)[0].class_names


def folder_splits_for(config, num_workers: int = 0) -> FolderSplits:
    """The :class:`FolderSplits` of a ``TrainConfig`` of ``dataset="folder"`` (see :func:`folder_options`).

    In a launched job rank 0 decodes the images into the cache first; the
    other ranks then read that cache instead of each decoding everything.

    Raises:
        DataFileError: as :func:`load_folder_splits`, and when the folder
            gives no validation images.
    """
    options = folder_options(config, num_workers)
    built: Dict[str, FolderSplits] = {}

    def build_on_main() -> bool:
        built["splits"] = load_folder_splits(config.data_dir, **options)
        return True

    on_main(build_on_main)
    splits = built.get("splits") or load_folder_splits(config.data_dir, **options)
    if splits.val is None:
        raise DataLayoutError(f"{config.data_dir or config.train_list}: no validation images (each class keeps at least one "
                              f"for training); add a validation folder or list, or more images per class.")
    return splits
