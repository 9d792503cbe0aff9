"""The report's answers to "how sure is it?" and "where did it look?": the calibration section and the mistakes' Grad-CAM overlays."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..deploy.calibration import coverage_curve, logits_from_probabilities, probabilities, reliability
from ..deploy.gradcam import overlay
from ..errors import HapiRunnerError
from . import figures
from .page import facts, fmt, img, notes, pct, section, table
from .predictions import Predictions

log = logging.getLogger("hapi_runner")

UNSURE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # the --unsure-below values the table shows


def calibration(predictions: Predictions, record: Optional[Dict[str, Any]], run_dir: str) -> str:
    """Reliability diagrams and ECE before and after the run's temperature, and the accuracy/coverage trade-off.

    Args:
        predictions: the evaluation shown on the page (uncalibrated probabilities).
        record: the run's ``calibration.json``, or None when it has none.
        run_dir: the run folder, named in the hint to calibrate it.
    """
    before = reliability(predictions.probs, predictions.labels)
    panels = [("uncalibrated", before)]
    lines = []
    probs = predictions.probs
    if record is None:
        lines.append(f"The run has no temperature yet; hapi-runner calibrate {run_dir} fits one.")
        items = [("ECE (15 bins)", fmt(before["ece"]))]
    else:
        temperature = float(record["temperature"])
        probs = probabilities(logits_from_probabilities(predictions.probs), temperature)
        after = reliability(probs, predictions.labels)
        panels.append((f"temperature {temperature:.3f}", after))
        items = [("temperature", fmt(temperature, 3)), ("ECE (15 bins), before / after", f"{fmt(before['ece'])} / {fmt(after['ece'])}"),
                 ("fitted on", record.get("source") or "\u2013"),
                 ("test-time augmentation", "image and mirror averaged" if record.get("tta") == "flip" else "none")]
        lines.append("The temperature is fitted on the evaluation images, so the ECE after it is measured on the images it was "
                     "fitted to; a held-out split measures it without that advantage. Accuracy does not change.")
    body = facts(items) + notes(lines) + img(figures.reliability_png(panels), "reliability diagrams")
    return section("Calibration", body + _coverage(probs, predictions.labels), "calibration")


def _coverage(probs: np.ndarray, labels: np.ndarray) -> str:
    """The accuracy/coverage curve and a table of ``--unsure-below`` thresholds, on the calibrated probabilities."""
    curve = coverage_curve(probs, labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    rows = []
    for threshold in UNSURE_THRESHOLDS:
        kept = confidence >= threshold
        rows.append((f"--unsure-below {threshold:g}", pct(kept.mean()), pct(correct[kept].mean()) if kept.any() else "\u2013"))
    listing = table(["threshold", "answered", "accuracy of the answers"], rows, table_id="unsure",
                    numeric=(False, True, True))
    return "<h3>Accuracy against coverage</h3>" + img(figures.coverage_png(curve), "accuracy against coverage") + listing


def mistake_overlays(predictions: Predictions, indices: Sequence[int]) -> Tuple[List[Optional[bytes]], Optional[str]]:
    """Grad-CAM overlays (PNG) of the predicted class for the gallery's mistakes, and a note when there are none.

    A network Grad-CAM cannot weigh (no convolution) leaves the gallery as it
    was, with one note saying why.
    """
    empty: List[Optional[bytes]] = [None] * len(indices)
    if predictions.heatmaps is None or not len(indices):
        return empty, None
    try:
        cams = predictions.heatmaps(list(indices), predictions.predicted[np.asarray(indices)].tolist())
    except HapiRunnerError as exc:
        log.warning("report: no Grad-CAM overlays (%s)", exc)
        return empty, f"No Grad-CAM overlays: {exc}"
    pictures = [figures.thumbnail_png(overlay(predictions.images[int(i)], cam)) for i, cam in zip(indices, cams)]
    return pictures, "Beside each mistake, Grad-CAM of the predicted class on the last convolutional layer: red where the network looked."
