"""The report's pictures as PNG bytes: curves, confusion matrices, the ROC curve, run overlays and image thumbnails.

Drawn on matplotlib's Agg canvas directly, never through pyplot, so no
window opens and the backend a user chose elsewhere is left alone.
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UsageError

THUMBNAIL_SIDE = 112  # pixels: a 28x28 image shown 4x, nearest neighbour, so its pixels stay visible
MAX_LABELLED_CLASSES = 20  # beyond that the tick labels overlap; the tables have the names


def require_drawing() -> None:
    """UsageError unless matplotlib and Pillow can be imported."""
    missing = [name for name, module in (("matplotlib", "matplotlib"), ("Pillow", "PIL")) if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"the report needs {' and '.join(missing)}: pip install {' '.join(missing)}.")


def _figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    figure.tight_layout()
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    return buf.getvalue()


def series(rows: Sequence[Dict[str, Any]], key: str) -> Tuple[List[int], List[float]]:
    """``(epochs, values)`` of one metrics.csv column, skipping blanks and NaN."""
    epochs, values = [], []
    for index, row in enumerate(rows):
        value = row.get(key)
        if value is None or value != value:
            continue
        epochs.append(row.get("epoch") or index + 1)
        values.append(float(value))
    return epochs, values


def _whole_epochs(ax, rows: Sequence[Dict[str, Any]]) -> None:
    """Ticks at whole epochs only: a 3-epoch run should not show epoch 1.5, nor a 1-epoch run 0.96."""
    epochs = sorted({int(row["epoch"]) for row in rows if row.get("epoch") is not None})
    if 0 < len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def curves_png(rows: Sequence[Dict[str, Any]], title: Optional[str] = None) -> bytes:
    """Loss, top-1 accuracy (training and evaluation) and learning rate per epoch, three panels in one picture."""
    figure = _figure(12, 3.6)
    axes = figure.subplots(1, 3)
    panels = (("loss", "Loss"), ("acc_top1", "Top-1 accuracy"))
    for ax, (metric, label) in zip(axes, panels):
        for source, style, name in (("train", "-o", "training"), ("eval", "--s", "evaluation")):
            epochs, values = series(rows, f"{source}_{metric}")
            if values:
                ax.plot(epochs, values, style, markersize=3, label=name)
        ax.set_title(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    epochs, values = series(rows, "lr")
    if values:
        axes[2].plot(epochs, values, "-o", markersize=3, color="tab:green")
    axes[2].set_title("Learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        _whole_epochs(ax, rows)
    if title:
        figure.suptitle(title)
    return _png(figure)


def confusion_png(confusion, class_names: Sequence[str], normalised: bool = False) -> bytes:
    """The confusion matrix (rows: true class) as counts, or each row divided by its total."""
    confusion = np.asarray(confusion, dtype=np.float64)
    if normalised:
        totals = confusion.sum(axis=1, keepdims=True)
        confusion = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    n = len(class_names)
    side = min(9.0, 2.5 + 0.42 * n)
    figure = _figure(side, side, dpi=80)  # two side by side fit the page
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(confusion, cmap="Blues", vmin=0, vmax=1 if normalised else max(confusion.max(), 1))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("row-normalised" if normalised else "counts")
    if n <= MAX_LABELLED_CLASSES:
        ax.set_xticks(range(n), labels=[_short(c) for c in class_names], rotation=90)
        ax.set_yticks(range(n), labels=[_short(c) for c in class_names])
        limit = 0.5 if normalised else confusion.max() / 2
        for i in range(n):
            for j in range(n):
                text = f"{confusion[i, j]:.2f}" if normalised else str(int(confusion[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if confusion[i, j] > limit else "black")
    return _png(figure)


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "\u2026"


def roc_png(fpr: Sequence[float], tpr: Sequence[float], auc: Optional[float], positive_name: str) -> bytes:
    """The ROC curve with the diagonal of chance."""
    figure = _figure(4.5, 4.5)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, "-", color="tab:blue", label=f"AUC {auc:.3f}" if auc is not None else "AUC undefined")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(f"ROC, positive class {_short(positive_name)}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    return _png(figure)


def overlay_png(runs: Sequence[Tuple[str, Sequence[Dict[str, Any]]]]) -> bytes:
    """Evaluation loss and top-1 per epoch of several runs, one line per run."""
    figure = _figure(11, 4)
    axes = figure.subplots(1, 2)
    for ax, (key, label) in zip(axes, (("eval_loss", "Evaluation loss"), ("eval_acc_top1", "Evaluation top-1"))):
        for name, rows in runs:
            epochs, values = series(rows, key)
            if values:
                ax.plot(epochs, values, "-o", markersize=3, label=name)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        _whole_epochs(ax, [row for _, rows in runs for row in rows])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _png(figure)


def thumbnail_png(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """A uint8 ``[H, W]`` or ``[H, W, 3]`` image as PNG, scaled to about ``side`` pixels.

    Small images grow by a whole factor with nearest neighbour (every pixel
    the model saw stays a sharp square); large ones shrink smoothly.
    """
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    longest = max(picture.size)
    if longest < side:
        factor = max(1, side // longest)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    elif longest > side:
        scale = side / longest
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def reliability_png(panels: Sequence[Tuple[str, Dict[str, Any]]]) -> bytes:
    """Reliability diagrams side by side: per confidence bin, the accuracy as a bar against the diagonal of perfect calibration.

    Args:
        panels: ``(title, bins)`` pairs, ``bins`` as
            :func:`hapi_runner.deploy.calibration.reliability` returns them.
    """
    figure = _figure(4.2 * len(panels), 4.2)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for ax, (title, bins) in zip(axes, panels):
        edges = np.asarray(bins["edges"])
        width = edges[1] - edges[0]
        filled = [i for i, count in enumerate(bins["count"]) if count]
        ax.bar(edges[filled], [bins["accuracy"][i] for i in filled], width=width, align="edge", color="tab:blue",
               edgecolor="white", label="accuracy")
        gaps = [(min(bins["confidence"][i], bins["accuracy"][i]), abs(bins["confidence"][i] - bins["accuracy"][i])) for i in filled]
        ax.bar(edges[filled], [g for _, g in gaps], width=width, align="edge", bottom=[b for b, _ in gaps], color="tab:red",
               alpha=0.3, label="gap to the mean confidence")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("top-1 probability")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}: ECE {bins['ece']:.4f}")
        ax.legend(loc="upper left", fontsize=8)
    return _png(figure)


def coverage_png(curve: Dict[str, Sequence[float]]) -> bytes:
    """Accuracy of the answers given against the share of images answered, as the unsure threshold rises."""
    figure = _figure(5, 4)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(curve["coverage"], curve["accuracy"], "-", color="tab:blue")
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("accuracy of the answers")
    ax.set_xlim(0, 1.0)
    ax.set_title("Answering only above a probability")
    ax.grid(True, alpha=0.3)
    return _png(figure)
