"""``label-issues``: the CSV of suspect labels and its page, and ``--apply``: the user's decisions as corrected list files.

``label_issues.csv`` has one row per suspect, most suspicious first:
``rank, path, split, given_label, suggested_label, confidence`` (the
out-of-sample probability of the suggested class), ``self_confidence`` (of
the given one) and ``action``, which starts as ``keep``: the user changes it
to ``relabel`` (to ``suggested_label``, which they may edit) or ``drop``.
``--apply`` then writes ``train_list.csv`` (and ``val_list.csv`` when the
dataset has a validation folder or list) listing every image with its
corrected label: the user's image files are never moved, renamed or deleted.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import DataFileError, UsageError
from ..report.figures import thumbnail_png
from ..report.page import document, esc, facts, sample, section, table
from ..runfolder.atomic import atomic_write_text
from .confident import find_label_issues
from .crossfit import CrossFit
from .names import CORRECTED_LIST, LABEL_ISSUES_CSV as CSV_NAME, LABEL_ISSUES_PAGE as PAGE_NAME
from .page import CAPTION_STYLE

COLUMNS = ("rank", "path", "split", "given_label", "suggested_label", "confidence", "self_confidence", "action")
ACTIONS = ("keep", "relabel", "drop")
PAGE_LIMIT = 200  # suspects shown with their images; the CSV has them all


def _where(dataset, index: int, split: str) -> str:
    paths = getattr(dataset, "paths", None)
    return paths[index] if paths is not None else f"{split}[{index}]"


def suspect_rows(fit: CrossFit, method: str = "both") -> List[Dict[str, Any]]:
    """The CSV rows: training and validation suspects together, ranked by self-confidence."""
    rows = []
    for split, dataset, probs in (("train", fit.train, fit.train_probs), ("val", fit.val, fit.val_probs)):
        if dataset is None or not len(dataset):
            continue
        issues = find_label_issues(dataset.labels, probs, method)
        names = dataset.class_names
        for index, suggested in zip(issues.indices.tolist(), issues.suggested.tolist()):
            rows.append({"path": _where(dataset, index, split), "split": split, "index": index,
                         "given_label": names[int(dataset.labels[index])], "suggested_label": names[suggested],
                         "confidence": round(float(probs[index, suggested]), 4),
                         "self_confidence": round(float(issues.self_confidence[index]), 4), "action": "keep"})
    rows.sort(key=lambda r: r["self_confidence"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def csv_text(rows: Sequence[Dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
    return buffer.getvalue()


def _thumb(dataset, index: int) -> bytes:
    array = np.asarray(dataset.images[index])
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # a built-in dataset's [C, H, W]
    return thumbnail_png(array[..., 0] if array.shape[-1] == 1 else array, 96)


def page_text(fit: CrossFit, rows: Sequence[Dict[str, Any]], title: str) -> str:
    """The suspects with their images, most suspicious first."""
    tiles = []
    for row in rows[:PAGE_LIMIT]:
        dataset = fit.train if row["split"] == "train" else fit.val
        lines = [f"#{row['rank']}: {row['split']}", f"given: {row['given_label']} ({row['self_confidence']:.2f})",
                 f"likely: {row['suggested_label']} ({row['confidence']:.2f})", f"file: {row['path']}"]
        tiles.append(sample(_thumb(dataset, row["index"]), lines, "mistake"))
    summary = facts([("training images", len(fit.train)), ("validation images", 0 if fit.val is None else len(fit.val)),
                     ("out-of-sample top-1 (training images)", f"{fit.accuracy:.3f}"), ("suspects", len(rows))])
    counts = {}
    for row in rows:
        counts[(row["given_label"], row["suggested_label"])] = counts.get((row["given_label"], row["suggested_label"]), 0) + 1
    pairs = table(["given", "likely", "suspects"], [[g, s, n] for (g, s), n in sorted(counts.items(), key=lambda kv: -kv[1])],
                  numeric=[False, False, True], table_id="pairs")
    more = f"<p>{len(rows) - PAGE_LIMIT} more in {esc(CSV_NAME)}.</p>" if len(rows) > PAGE_LIMIT else ""
    gallery = f'<div class="gallery" id="suspects">{"".join(tiles) or "no suspect"}</div>{more}'
    return document(f"Label issues: {title}", "images whose label disagrees with a model trained without them",
                    [CAPTION_STYLE, section("Summary", summary + pairs, "summary"), section("Suspects", gallery, "suspects-section")])


def write_outputs(fit: CrossFit, output_dir: str, title: str, method: str = "both") -> Dict[str, Any]:
    """Writes ``label_issues.csv`` and ``label_issues.html`` into ``output_dir``; returns what was written."""
    rows = suspect_rows(fit, method)
    os.makedirs(output_dir, exist_ok=True)
    csv_path, page_path = os.path.join(output_dir, CSV_NAME), os.path.join(output_dir, PAGE_NAME)
    atomic_write_text(csv_path, csv_text(rows))
    atomic_write_text(page_path, page_text(fit, rows, title))
    return {"csv": csv_path, "page": page_path, "suspects": len(rows), "accuracy": fit.accuracy,
            "train_images": len(fit.train), "val_images": len(fit.val)}


def read_decisions(path: str, class_names: Sequence[str]) -> Dict[str, Optional[str]]:
    """``{absolute path: new class name, or None to drop}`` from an edited CSV; ``keep`` rows are left out.

    Raises:
        UsageError: the file does not exist.
        DataFileError: a row with an unknown action or class (file and line named).
    """
    if not os.path.isfile(path):
        raise UsageError(f"--apply '{path}' does not exist; pass the {CSV_NAME} written by label-issues, edited.")
    decisions: Dict[str, Optional[str]] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("path", "suggested_label", "action") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFileError(f"{path} line 1: no '{missing[0]}' column; keep the header label-issues wrote.")
        for row in reader:
            line = reader.line_num
            action = (row["action"] or "keep").strip().lower()
            if action not in ACTIONS:
                raise DataFileError(f"{path} line {line}: action '{row['action']}' is not one of {', '.join(ACTIONS)}; fix the cell.")
            label = (row["suggested_label"] or "").strip()
            if action == "relabel" and label not in class_names:
                raise DataFileError(f"{path} line {line}: class '{label}' is not a class of the dataset; "
                                    f"choose one of: {', '.join(class_names)}.")
            if action != "keep":
                decisions[os.path.abspath(row["path"])] = label if action == "relabel" else None
    return decisions


def corrected_list(files, decisions: Dict[str, Optional[str]], root: str) -> str:
    """CSV text ``path,label`` of ``files`` (a FileSet) with the decisions applied, paths relative to ``root`` when inside it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label"])
    for path, label in zip(files.paths, files.labels.tolist()):
        name = decisions.get(path, files.class_names[label])
        if name is None:
            continue
        inside = os.path.commonpath([os.path.abspath(root), path]) == os.path.abspath(root)
        writer.writerow([os.path.relpath(path, root) if inside else path, name])
    return buffer.getvalue()


def apply_decisions(csv_path: str, data_dir: Optional[str], *, train_list: Optional[str] = None,
                    val_list: Optional[str] = None, output_dir: Optional[str] = None) -> Dict[str, Any]:
    """Writes ``train_list.csv`` (and ``val_list.csv``) with the edited CSV's relabels and drops applied.

    Args:
        csv_path: the edited ``label_issues.csv``.
        data_dir, train_list, val_list: the dataset, as label-issues read it.
        output_dir: where the lists go. Defaults to the CSV's folder.

    Returns:
        The lists written, their root (``--data-dir`` for training on them), and the counts.
    """
    from ..datasets.folder import list_folder_files

    train, val = list_folder_files(data_dir, train_list, val_list)
    decisions = read_decisions(csv_path, train.class_names)
    root = data_dir or os.path.dirname(os.path.abspath(train_list))
    output_dir = output_dir or os.path.dirname(os.path.abspath(csv_path))
    os.makedirs(output_dir, exist_ok=True)
    written = {}
    for name, files in (("train_list", train), ("val_list", val)):
        if files is not None:
            written[name] = os.path.join(output_dir, CORRECTED_LIST.format(split=name.split("_")[0]))
            atomic_write_text(written[name], corrected_list(files, decisions, root))
    listed = set(train.paths) | set(val.paths if val is not None else [])
    return {**written, "data_dir": os.path.abspath(root), "relabelled": sum(v is not None for v in decisions.values()),
            "dropped": sum(v is None for v in decisions.values()), "not_in_dataset": len(set(decisions) - listed)}
