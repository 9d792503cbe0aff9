"""What a folder dataset holds, as training would read it: the files of each split and what their headers say.

The files are listed by the folder scan training uses, split as training
splits them (a validation folder or list, else the same stratified
``val_split`` of the readable training images with the same seed), and
decoded through the same image cache at the same short side, so a check
followed by a training run decodes every image once, not twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..datasets.folder import list_folder_files
from ..datasets.folder_scan import FileSet, stratified_split
from ..datasets.image_cache import decode_once
from ..datasets.image_decode import DECODE_ERRORS
from ..errors import DataFileError, UsageError

# Pillow's modes in words, for people who have not met them.
MODE_NAMES = {"1": "1-bit", "L": "grey", "LA": "grey + alpha", "P": "palette", "PA": "palette + alpha", "RGB": "RGB",
              "RGBA": "RGBA", "CMYK": "CMYK", "YCbCr": "YCbCr", "I;16": "16-bit grey", "I;16B": "16-bit grey",
              "I;16L": "16-bit grey", "I": "32-bit grey", "F": "float grey"}


@dataclass
class Entry:
    """One listed image file.

    Attributes:
        path: absolute path.
        split: ``train`` or ``val``.
        label: class index.
        width, height, mode, fmt: from the header (0, 0, "", "" when unreadable).
        error: why it cannot be read, or None.
        store, row: the decoded-image store holding it and its position there.
    """

    path: str
    split: str
    label: int
    width: int = 0
    height: int = 0
    mode: str = ""
    fmt: str = ""
    error: Optional[str] = None
    store: object = None
    row: int = -1


@dataclass
class Inventory:
    """Every listed image, the class names, and how the validation part was chosen."""

    entries: List[Entry]
    class_names: List[str]
    validation: str
    notes: List[str]


def header(path: str) -> Tuple[int, int, str, str]:
    """``(width, height, mode, format)`` from the file's header (no pixels decoded)."""
    with Image.open(path) as image:
        return image.size[0], image.size[1], image.mode, image.format or ""


def _entries(files: FileSet, split: str, report) -> List[Entry]:
    entries = []
    for row, (path, label) in enumerate(zip(files.paths, files.labels.tolist())):
        entry = Entry(path, split, int(label), store=report.images, row=row, error=report.bad.get(row))
        if entry.error is None:
            try:
                entry.width, entry.height, entry.mode, entry.fmt = header(path)
            except DECODE_ERRORS as exc:  # the decoder read it once; a file changed since is reported, not fatal
                entry.error = f"{type(exc).__name__}: {exc}"
        entry.error = " ".join(entry.error.split()) if entry.error else None
        entries.append(entry)
    return entries


def _hold_out(entries: List[Entry], val_split: float, seed: int) -> str:
    """Marks training's stratified validation part among the readable images; returns how it was chosen."""
    readable = [e for e in entries if e.error is None]
    _, held = stratified_split(np.asarray([e.label for e in readable], dtype=np.int64), val_split, seed)
    for index in held.tolist():
        readable[index].split = "val"
    return f"a stratified {val_split * 100:g}% of the training images, seed {seed} (no validation folder or list)"


def take_inventory(data_dir: Optional[str], *, train_list: Optional[str] = None, val_list: Optional[str] = None,
                   channels: int = 3, side: int = 256, val_split: float = 0.1, seed: int = 0,
                   decode: Optional[Dict[str, object]] = None) -> Inventory:
    """Lists, decodes (through the cache) and splits a folder dataset.

    Args:
        data_dir: as ``--data-dir`` of ``--dataset folder``.
        train_list, val_list: as ``--train-list`` and ``--val-list``. Default to None.
        channels: 1 or 3, as ``--channels``. Defaults to 3.
        side: the short side images are decoded at. Defaults to 256 (``--image-size 224``).
        val_split: without a validation folder or list, the fraction held out. Defaults to 0.1.
        seed: the seed of that split. Defaults to 0.
        decode: more keyword options of :func:`~hapi_runner.datasets.image_cache.decode_once`. Defaults to None.

    Raises:
        UsageError: the folder or lists cannot be read as a dataset at all (one line).
    """
    try:
        train, val = list_folder_files(data_dir, train_list, val_list)
    except DataFileError as exc:
        raise UsageError(str(exc)) from exc
    notes: List[str] = []
    entries: List[Entry] = []
    for files, split in ((train, "train"), (val, "val")):
        if files is not None:
            report = decode_once(files.paths, channels, side, **(decode or {}))
            notes += report.notes
            entries += _entries(files, split, report)
    if val is not None:
        validation = f"{val.origin}"
    elif not any(e.error is None for e in entries):
        validation = "none (no training image could be read)"
    else:
        validation = _hold_out(entries, val_split, seed)
    return Inventory(entries, train.class_names, validation, notes)
