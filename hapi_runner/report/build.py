"""``build_report``: a finished run's ``report.html``, one self-contained page."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ..config.checks import check_int
from ..errors import UsageError
from ..training.metrics import classification_report, without_roc_points
from ..runfolder.atomic import atomic_write_text
from ..deploy.calibration import read_calibration
from . import sections, trust
from .figures import require_drawing
from .page import document
from .predictions import Predictions
from ..runfolder.finished import read_run, resolve_checkpoint
from ..runfolder.layout import REPORT

MAX_IMAGES = 24
CORRECT_PER_CLASS = 2


def build_report(run_dir: str, predictions: Optional[Predictions] = None, *, checkpoint: str = "best",
                 max_images: int = MAX_IMAGES, correct_per_class: int = CORRECT_PER_CLASS, positive: int = 1,
                 output: Optional[str] = None) -> Dict[str, Any]:
    """Writes ``report.html`` for a finished run.

    Args:
        run_dir: a run folder written by training.
        predictions: the evaluation of ``checkpoint``'s weights on the
            evaluation set; without it the page has the run's figures alone
            (no per-class table, confusion matrix or gallery). Defaults to None.
        checkpoint: ``best``, ``last`` or a checkpoint folder: the weights the
            predictions come from, named in the header. ``best`` falls back to
            the last checkpoint when none was monitored. Defaults to ``best``.
        max_images: misclassified images in the gallery, and at most as many
            correct ones. Defaults to 24.
        correct_per_class: correct images shown per class. Defaults to 2.
        positive: with two classes, the index of the positive class for
            sensitivity, specificity and ROC. Defaults to 1.
        output: where to write. Defaults to ``<run_dir>/report.html``.

    Returns:
        ``path`` (the page), ``checkpoint_epoch``, and ``metrics`` (the
        :func:`hapi_runner.training.metrics.classification_report` of the
        predictions without the ROC points, or None).

    Raises:
        UsageError: the folder is not a finished run, has no checkpoint, or
            the predictions do not fit the run.
    """
    check_int("max_images", max_images, 0)
    check_int("correct_per_class", correct_per_class, 0)
    if predictions is not None and not isinstance(predictions, Predictions):
        raise UsageError(f"predictions must be a hapi_runner.report.Predictions, got {type(predictions).__name__}.")
    require_drawing()
    run = read_run(run_dir)
    chosen, note = resolve_checkpoint(run, checkpoint)
    evaluation = None
    if predictions is not None:
        evaluation = classification_report(predictions.labels, predictions.probs, predictions.class_names, positive=positive)
    parts = [sections.header(run, chosen, note, predictions), sections.curves(run),
             sections.final_metrics(run, evaluation, predictions)]
    if evaluation is not None:
        names = predictions.class_names
        if evaluation["binary"] is not None:
            parts.append(sections.binary(evaluation, names))
        parts.append(sections.confusion(evaluation, names))
        order = sorted(range(len(names)), key=lambda i: (evaluation["f1"][i], evaluation["recall"][i], i))
        parts.append(trust.calibration(predictions, read_calibration(run_dir), run_dir))
        parts.append(sections.gallery(predictions, order, max_images, correct_per_class))
    parts.append(sections.export_check(run))
    results = run.results
    title = f"{results.get('model')} on {results.get('dataset')}"
    page = document(title, f"hapi_runner report of {os.path.abspath(run_dir)}", parts)
    path = output or os.path.join(run_dir, REPORT)
    atomic_write_text(path, page)
    return {"path": path, "checkpoint_epoch": chosen["epoch"],
            "metrics": without_roc_points(evaluation) if evaluation is not None else None}
