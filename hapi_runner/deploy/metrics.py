"""Loss, top-1, top-5, per-class accuracy and the confusion matrix from logits, and the matrix as CSV and PNG.

Both engines of ``hapi-runner evaluate`` hand their logits here, so dygraph
and ``paddle.inference`` figures come from the same arithmetic.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict

import numpy as np

from ..utils import atomic_write_bytes, atomic_write_text


def metrics_from_logits(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> Dict[str, Any]:
    """Cross-entropy loss, top-1, top-5, per-class accuracy and the confusion matrix (rows: true class)."""
    logits = logits.astype(np.float64)
    labels = labels.astype(np.int64).ravel()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    k = min(5, logits.shape[1])
    topk = np.argsort(-logits, axis=1)[:, :k]
    predicted = topk[:, 0]
    confusion = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    per_class_total = confusion.sum(axis=1)
    per_class = np.where(per_class_total > 0, np.diag(confusion) / np.maximum(per_class_total, 1), np.nan)
    return {
        "loss": loss,
        "acc_top1": float((predicted == labels).mean()),
        "acc_top5": float((topk == labels[:, None]).any(axis=1).mean()),
        "num_samples": int(len(labels)),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
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
    atomic_write_bytes(png_path, _confusion_png(np.asarray(confusion), list(class_names)))
    return {"csv": csv_path, "png": png_path}


def _confusion_png(confusion: np.ndarray, class_names) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(class_names)
    side = min(14, 3 + 0.45 * n)
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(confusion, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:  # beyond that the labels overlap; the CSV has them
        ax.set_xticks(range(n), labels=class_names, rotation=90)
        ax.set_yticks(range(n), labels=class_names)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
