"""Loss, top-1, top-5 and the per-class figures from logits, and the confusion matrix as CSV and PNG.

Both engines of ``hapi-runner evaluate`` hand their logits here, so dygraph
and ``paddle.inference`` figures come from the same arithmetic. The confusion
matrix and the per-class scores come from :mod:`hapi_runner.training.metrics`, as the report's do.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..training.metrics import classification_report, shows_top_k, without_roc_points
from ..report.figures import confusion_png
from ..runfolder.atomic import atomic_write_bytes, atomic_write_text


def metrics_from_logits(logits: np.ndarray, labels: np.ndarray, num_classes: int,
                        class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Loss, top-1, top-5, per-class accuracy, and :func:`hapi_runner.training.metrics.classification_report`'s figures.

    Args:
        logits: ``[N, num_classes]`` network outputs.
        labels: ``[N]`` true class indices.
        num_classes: the classes the network tells apart.
        class_names: one per class. Defaults to ``class_<i>``.

    Returns:
        ``loss`` (cross-entropy), ``acc_top1``, ``acc_top5`` (None with 5
        classes or fewer, where it is always 1), ``num_samples``,
        ``per_class_accuracy`` (None for a class without samples),
        ``class_names``, and the report's ``confusion_matrix`` (rows: true
        class), ``precision``, ``recall``, ``f1``, ``support``, ``macro``,
        ``weighted``, ``most_confused``, ``notes`` and, for two classes,
        ``binary`` (ROC-AUC, sensitivity, specificity; without the ROC points).
    """
    logits = logits.astype(np.float64)
    labels = labels.astype(np.int64).ravel()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    k = min(5, logits.shape[1])
    topk = np.argsort(-logits, axis=1)[:, :k]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    report = without_roc_points(classification_report(labels, np.exp(log_probs), names))
    support = np.asarray(report["support"])
    return {
        "loss": loss,
        "acc_top1": float((topk[:, 0] == labels).mean()),
        "acc_top5": float((topk == labels[:, None]).any(axis=1).mean()) if shows_top_k(logits.shape[1]) else None,
        "num_samples": int(len(labels)),
        "per_class_accuracy": [float(r) if n else None for r, n in zip(report["recall"], support)],
        "class_names": names,
        **{key: report[key] for key in ("confusion_matrix", "precision", "recall", "f1", "support", "macro", "weighted",
                                        "most_confused", "notes", "binary")},
    }


def write_confusion(folder: str, stem: str, confusion, class_names) -> Dict[str, str]:
    """``<stem>.csv`` and ``<stem>.png`` of a confusion matrix."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *class_names])
    for name, row in zip(class_names, confusion):
        writer.writerow([name, *row])
    csv_path = os.path.join(folder, f"{stem}.csv")
    atomic_write_text(csv_path, buf.getvalue())
    png_path = os.path.join(folder, f"{stem}.png")
    atomic_write_bytes(png_path, confusion_png(np.asarray(confusion), list(class_names)))
    return {"csv": csv_path, "png": png_path}
