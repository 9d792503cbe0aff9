"""Which image files make up a folder dataset, and their labels: class folders, file lists, stratified split.

Class folders follow torchvision's ``ImageFolder`` and Keras' convention: the
class names are the sorted names of the folders under ``train/``, a class's
index is its position in that order, files in nested sub-folders belong to
the class, and names that are not images (``.DS_Store``, ``notes.txt``) and
hidden folders are ignored. File lists are PaddleClas lists
(``relative/path label`` per line) or CSV files with a header. Paths are
kept absolute; labels are int64.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataFileError, DataLayoutError, UsageError
from .image_decode import IMAGE_EXTENSIONS, is_image_name

# Folder names taken for the validation split, in this order of preference.
VAL_FOLDERS = ("val", "valid", "validation", "test")
PATH_COLUMNS = ("path", "file", "filename", "image")
LABEL_COLUMNS = ("label", "class")


@dataclass
class FileSet:
    """Image files and their labels.

    Attributes:
        paths: absolute file paths.
        labels: int64 class indices, one per path.
        class_names: one name per class.
        origin: where they were listed (a folder or a list file), for messages.
    """

    paths: List[str]
    labels: np.ndarray
    class_names: List[str]
    origin: str

    def subset(self, indices) -> "FileSet":
        indices = np.asarray(indices, dtype=np.int64)
        return FileSet([self.paths[i] for i in indices], self.labels[indices], self.class_names, self.origin)


def _extensions() -> str:
    return " ".join(e[1:] for e in IMAGE_EXTENSIONS)


def _class_folders(folder: str) -> List[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))


def _images_under(folder: str) -> List[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_image_name(f) and not f.startswith("."))
    return found


def scan_class_folders(folder: str, class_names: Optional[Sequence[str]] = None) -> FileSet:
    """The images of ``folder/<class>/**``.

    Args:
        folder: holds one sub-folder per class.
        class_names: the training classes, for a validation folder (its
            classes must be among them). Defaults to None: this is the
            training folder, and its sorted sub-folders are the classes.

    Raises:
        DataLayoutError: no class folder, an empty one, a single class, or a
            validation class training does not have.
    """
    names = _class_folders(folder)
    if not names:
        raise DataLayoutError(f"{folder}: no class folders; put each class's images in {folder}/<class name>/.")
    if class_names is None and len(names) < 2:
        raise DataLayoutError(f"{folder}: only one class folder ('{names[0]}'); a classifier needs at least two classes, one folder each.")
    if class_names is not None:
        unknown = [n for n in names if n not in class_names]
        if unknown:
            raise DataLayoutError(f"{folder}: class folder '{unknown[0]}' is not a training class "
                                  f"({len(unknown)} such); validation classes must be among: {', '.join(class_names)}.")
    classes = list(class_names) if class_names is not None else names
    paths, labels = [], []
    for name in names:
        found = _images_under(os.path.join(folder, name))
        if not found:
            raise DataLayoutError(f"{os.path.join(folder, name)}: class folder holds no images ({_extensions()}); "
                                  f"add images or remove the folder.")
        paths.extend(os.path.abspath(p) for p in found)
        labels.extend([classes.index(name)] * len(found))
    return FileSet(paths, np.asarray(labels, dtype=np.int64), classes, folder)


def find_folders(data_dir: str) -> Tuple[str, Optional[str]]:
    """``(train folder, validation folder or None)`` under ``data_dir``."""
    if not os.path.isdir(data_dir):
        raise UsageError(f"data_dir '{data_dir}' is not a folder; pass the folder that holds train/<class>/ (and val/<class>/).")
    train = os.path.join(data_dir, "train")
    if not os.path.isdir(train):
        raise UsageError(f"data_dir '{data_dir}' has no train/ folder; lay images out as {data_dir}/train/<class>/..., "
                         f"or pass --train-list FILE (train_list).")
    for name in VAL_FOLDERS:
        if os.path.isdir(os.path.join(data_dir, name)):
            return train, os.path.join(data_dir, name)
    return train, None


def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise UsageError(f"list file '{path}' does not exist; pass a PaddleClas list or a CSV file.")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                            f"save the list as UTF-8 text.") from exc


def _is_csv_header(line: str) -> bool:
    cells = [c.strip().lower() for c in line.split(",")]
    return len(cells) > 1 and any(c in PATH_COLUMNS + LABEL_COLUMNS for c in cells)


def _paddleclas_rows(path: str, text: str) -> List[Tuple[int, str, str]]:
    """``(line number, relative path, label text)``: the label is the last field, after a tab, comma or space."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cut = max(line.rfind("\t"), line.rfind(","), line.rfind(" "))
        if cut <= 0:
            raise DataFileError(f"{path} line {number}: '{line[:80]}' is not 'relative/path label' "
                                f"(separated by a space, tab or comma).")
        rows.append((number, line[:cut].strip().rstrip(",").strip(), line[cut + 1:].strip()))
    return rows


def _column(path: str, header: List[str], allowed: Sequence[str], what: str) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in allowed:
        if name in lowered:
            return lowered.index(name)
    raise DataFileError(f"{path} line 1: no {what} column in the header; name one of: {', '.join(allowed)}.")


def _csv_rows(path: str, text: str) -> List[Tuple[int, str, str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    path_col = _column(path, header, PATH_COLUMNS, "path")
    label_col = _column(path, header, LABEL_COLUMNS, "label")
    rows = []
    for cells in reader:
        number = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) <= max(path_col, label_col) or not cells[path_col].strip() or not cells[label_col].strip():
            raise DataFileError(f"{path} line {number}: expected {len(header)} fields with a path and a label, "
                                f"got {','.join(cells)[:80]!r}.")
        rows.append((number, cells[path_col].strip(), cells[label_col].strip()))
    return rows


def _labels(path: str, rows, class_names: Optional[Sequence[str]], indices_only: bool) -> Tuple[np.ndarray, List[str]]:
    texts = [label for _, _, label in rows]
    if all(t.isascii() and t.isdigit() for t in texts):
        labels = np.asarray([int(t) for t in texts], dtype=np.int64)
        if class_names is None:
            present = np.unique(labels)
            class_names = [str(i) for i in range(int(labels.max()) + 1)]
            missing = sorted(set(range(len(class_names))) - set(present.tolist()))
            if missing:
                raise DataLayoutError(f"{path}: class index {missing[0]} has no images ({len(missing)} of 0..{len(class_names) - 1} "
                                      f"have none); number the classes 0..K-1 without gaps.")
        for (number, _, _), label in zip(rows, labels):
            if label >= len(class_names):
                raise DataFileError(f"{path} line {number}: label {label} is not a training class; "
                                    f"training has {len(class_names)} classes (0..{len(class_names) - 1}).")
        return labels, list(class_names)
    if indices_only:
        number, _, label = next(r for r in rows if not (r[2].isascii() and r[2].isdigit()))
        raise DataFileError(f"{path} line {number}: label '{label}' is not a class index (an integer >= 0); "
                            f"a PaddleClas list gives 'relative/path index', a CSV with a header may give class names.")
    names = sorted(set(texts)) if class_names is None else list(class_names)
    lookup = {n: i for i, n in enumerate(names)}
    for number, _, label in rows:
        if label not in lookup:
            raise DataFileError(f"{path} line {number}: class '{label}' is not a training class; "
                                f"choose one of: {', '.join(names)}.")
    return np.asarray([lookup[t] for t in texts], dtype=np.int64), names


def read_file_list(path: str, root: str, class_names: Optional[Sequence[str]] = None) -> FileSet:
    """The images and labels of a PaddleClas list or a CSV file, paths relative to ``root``.

    Args:
        path: the list file.
        root: the folder the listed paths are relative to.
        class_names: the training classes, for a validation list. Defaults to
            None: this is the training list, which decides the classes
            (indices 0..K-1, or the sorted class names of a CSV).

    Raises:
        DataFileError: a line that cannot be read, an unknown label, a listed
            file that does not exist (the first is named, with a count of the
            others), an empty list, or a single class.
    """
    text = _read_text(path)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    is_csv = _is_csv_header(first)
    rows = _csv_rows(path, text) if is_csv else _paddleclas_rows(path, text)
    if not rows:
        raise DataLayoutError(f"{path}: the list holds no images; write one 'relative/path label' per line.")
    labels, names = _labels(path, rows, class_names, indices_only=not is_csv)
    if class_names is None and len(names) < 2:
        raise DataLayoutError(f"{path}: every image has the same label ('{names[0]}'); a classifier needs at least two classes.")
    paths = [os.path.abspath(os.path.join(root, rel)) for _, rel, _ in rows]
    missing = [(number, p) for (number, _, _), p in zip(rows, paths) if not os.path.isfile(p)]
    if missing:
        number, first_missing = missing[0]
        more = f" ({len(missing) - 1} more listed files are missing)" if len(missing) > 1 else ""
        raise DataFileError(f"{path} line {number}: image '{first_missing}' does not exist{more}; "
                            f"listed paths are relative to '{root}'.")
    return FileSet(paths, labels, names, path)


def stratified_split(labels: np.ndarray, fraction: float, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(kept, held)`` sorted indices: ``fraction`` of every class held out, the rest kept.

    The held-out total is ``round(len * fraction)``, shared among the classes
    in proportion to their sizes (largest remainders first); every class keeps
    at least one training image. The choice inside a class is a seeded
    permutation, so one seed always holds out the same files.

    Raises:
        UsageError: the fraction leaves no validation image, or too many.
    """
    classes, counts = np.unique(labels, return_counts=True)
    total = int(round(len(labels) * fraction))
    exact = counts * fraction
    take = np.minimum(np.floor(exact).astype(np.int64), counts - 1)
    room = counts - 1 - take
    for i in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if take.sum() >= total:
            break
        if room[i] > 0:
            take[i] += 1
            room[i] -= 1
    if total < 1 or take.sum() < 1 or take.sum() != total:
        raise UsageError(f"val_split {fraction} holds out {int(take.sum())} of {len(labels)} images "
                         f"(every class keeps at least one); choose a fraction that leaves both parts non-empty, "
                         f"or add a val/ folder.")
    rng = np.random.default_rng([seed, 7])
    held = []
    for cls, count in zip(classes, take):
        members = np.flatnonzero(labels == cls)
        held.extend(members[rng.permutation(len(members))[:count]].tolist())
    held = np.sort(np.asarray(held, dtype=np.int64))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held
