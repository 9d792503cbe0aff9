"""How sure the model is: temperature scaling, expected calibration error, test-time flips, and the answer to give.

Temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", 2017) divides the logits by one number ``T`` fitted on held-out
images so that the softmax's top-1 probability matches how often the top-1
class is right. It never changes which class wins, so accuracy stays; only
the probabilities move. The expected calibration error (ECE) is the gap
between confidence and accuracy averaged over 15 equal-width confidence bins.

:func:`answers_from_logits` is the one place where logits become what a user
is told (top-k, the calibrated probability, ``unsure`` below a threshold), so
``hapi-runner predict`` and a server built on the same export answer alike.
Nothing here imports Paddle.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import HapiRunnerError, UsageError
from ..runfolder.layout import CALIBRATION, RunPaths
from ..runfolder.atomic import write_json
from .layout import SIDECAR

ECE_BINS = 15
TTA_MODES = ("none", "flip")
UNSURE = "unsure"
# Datasets where the mirror image can be another class (a mirrored 2 is no 2), so a flip is no neutral view.
# The whole MNIST family is refused, as its training never flips either.
MIRROR_REFUSED = ("mnist", "fashion-mnist", "fashion-mnist-mini")
# log T is searched in this range: T from 1/50 to 50 covers any network seen in practice.
_LOG_T_RANGE = (np.log(0.02), np.log(50.0))


def _views(logits) -> np.ndarray:
    """Logits as ``[views, N, classes]`` float64: one view, or one per test-time augmentation."""
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] < 1:
        raise UsageError(f"logits must be [N, classes] or [views, N, classes], got shape {list(np.shape(logits))}.")
    return array


def probabilities(logits, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``[N, classes]``: the softmax of ``logits / temperature``, averaged over the views.

    Args:
        logits: ``[N, classes]``, or ``[views, N, classes]`` for test-time
            augmentation (the image and its mirror: their probabilities are averaged).
        temperature: the divisor of the logits. Defaults to 1 (uncalibrated).
    """
    scaled = _views(logits) / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).mean(axis=0)


def logits_from_probabilities(probs) -> np.ndarray:
    """Logits that give back ``probs`` under a softmax (the log; a row may shift by a constant, which a softmax ignores)."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy of the (averaged) probabilities at ``temperature``."""
    probs = probabilities(logits, temperature)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-300, None)).mean())


def fit_temperature(logits, labels, *, iterations: int = 80) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``.

    One-dimensional, so a golden-section search on ``log T`` suffices (for a
    single view the loss is convex in ``1/T``, hence unimodal in ``log T``).

    Args:
        logits: ``[N, classes]`` or ``[views, N, classes]``, from images the network did not train on.
        labels: ``[N]`` true classes.
        iterations: golden-section steps; 80 narrow the range below 1e-15. Defaults to 80.

    Raises:
        UsageError: fewer than two samples, or labels outside the classes.
    """
    views = _views(logits)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if len(labels) < 2 or len(labels) != views.shape[1]:
        raise UsageError(f"temperature scaling needs two labelled samples or more, one per row of logits; "
                         f"got {len(labels)} labels for {views.shape[1]} rows.")
    if labels.min() < 0 or labels.max() >= views.shape[-1]:
        raise UsageError(f"labels must lie in 0..{views.shape[-1] - 1}, got {labels.min()}..{labels.max()}.")
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = _LOG_T_RANGE

    def loss(log_t: float) -> float:
        return negative_log_likelihood(views, labels, float(np.exp(log_t)))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(iterations):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2.0))


def reliability(probs, labels, bins: int = ECE_BINS) -> Dict[str, Any]:
    """Confidence against accuracy in ``bins`` equal-width bins of the top-1 probability, and the ECE.

    Args:
        probs: ``[N, classes]`` class probabilities.
        labels: ``[N]`` true classes.
        bins: Defaults to 15, as Guo et al. report.

    Returns:
        ``edges`` (``bins + 1``), per bin ``count``, ``confidence`` and
        ``accuracy`` (None for an empty bin), and ``ece``: the count-weighted
        mean of ``|accuracy - confidence|``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins, (a, b], so a confidence of exactly 1 falls in the last one.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts, conf, acc, gap = [], [], [], 0.0
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        counts.append(count)
        if count == 0:
            conf.append(None)
            acc.append(None)
            continue
        conf.append(float(confidence[members].mean()))
        acc.append(float(correct[members].mean()))
        gap += count * abs(acc[-1] - conf[-1])
    return {"edges": edges.tolist(), "count": counts, "confidence": conf, "accuracy": acc,
            "ece": gap / max(1, len(labels))}


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """ECE of ``probs`` (see :func:`reliability`) in ``bins`` bins. Defaults to 15."""
    return reliability(probs, labels, bins)["ece"]


def coverage_curve(probs, labels) -> Dict[str, List[float]]:
    """Accuracy on the images kept against the share kept, when answers below a confidence are withheld.

    Returns:
        ``threshold`` (ascending), ``coverage`` and ``accuracy``: answering
        only where the top-1 probability is at least ``threshold`` keeps
        ``coverage`` of the images, of which ``accuracy`` are right.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    kept = np.arange(1, len(order) + 1)
    accuracy = np.cumsum(correct[order]) / kept
    # Read from the most confident down, so thresholds come out descending; reversed for the caller.
    return {"threshold": confidence[order][::-1].tolist(), "coverage": (kept / len(order))[::-1].tolist(),
            "accuracy": accuracy[::-1].tolist()}


def check_unsure_below(value: Optional[float]) -> Optional[float]:
    """``--unsure-below P``: None, or a probability in (0, 1]."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < float(value) <= 1.0:
        raise UsageError(f"unsure_below must be a probability in (0, 1], got {value!r}; e.g. --unsure-below 0.6.")
    return float(value)


def check_tta(tta: Optional[str], dataset: Optional[str]) -> str:
    """The test-time augmentation to use: ``none`` or ``flip``, refused where a mirror may change the class.

    Raises:
        UsageError: an unknown mode, or ``flip`` for the MNIST family.
    """
    tta = tta or "none"
    if tta not in TTA_MODES:
        raise UsageError(f"tta '{tta}' is not known; choose one of: {', '.join(TTA_MODES)}.")
    if tta == "flip" and dataset in MIRROR_REFUSED:
        raise UsageError(f"--tta flip is refused for {dataset}: a mirrored image of the MNIST family can be another "
                         f"class (a mirrored 2 is no 2); drop --tta.")
    return tta


def mirror(batch: np.ndarray) -> np.ndarray:
    """The horizontal mirror of a ``[N, C, H, W]`` batch."""
    return np.ascontiguousarray(np.asarray(batch)[..., ::-1])


def answers_from_logits(logits, *, class_names: Optional[Sequence[str]] = None, temperature: float = 1.0,
                        unsure_below: Optional[float] = None, top_k: int = 5) -> List[Dict[str, Any]]:
    """What to tell a user about each image, from the network's logits.

    Args:
        logits: ``[N, classes]``, or ``[views, N, classes]`` with test-time
            augmentation (the probabilities of the views are averaged).
        class_names: one per class. Defaults to the class indices as text.
        temperature: the calibration's divisor of the logits (the sidecar's
            ``temperature``). Defaults to 1.
        unsure_below: answer ``unsure`` when the calibrated top-1 probability
            is below it. Defaults to None (always the top-1 class).
        top_k: classes listed per image. Defaults to 5 (at most the class count).

    Returns:
        One dict per image: ``answer`` (the top-1 class name, or ``unsure``),
        ``unsure``, ``class_id``, ``class_name`` and ``probability`` of the
        top-1 class, ``top_k`` (dicts of the same three keys), and
        ``logits``: the raw network outputs (averaged over the views), before any temperature.
    """
    views = _views(logits)
    probs = probabilities(views, temperature)
    raw = views.mean(axis=0)
    names = list(class_names) if class_names else [str(i) for i in range(probs.shape[1])]
    k = min(int(top_k), probs.shape[1])
    answers = []
    for row, row_logits in zip(probs, raw):
        order = np.argsort(-row, kind="stable")[:k]
        top = [{"class_id": int(i), "class_name": names[i], "probability": float(row[i])} for i in order]
        unsure = unsure_below is not None and top[0]["probability"] < unsure_below
        answers.append({"answer": UNSURE if unsure else top[0]["class_name"], "unsure": bool(unsure), **top[0],
                        "top_k": top, "logits": [float(v) for v in row_logits]})
    return answers


def summarize(logits, labels, temperature: float, *, tta: str = "none", source: str = "") -> Dict[str, Any]:
    """The calibration record: temperature, ECE and NLL before and after, the reliability bins of both."""
    before, after = probabilities(logits), probabilities(logits, temperature)
    return {"temperature": float(temperature), "tta": tta, "bins": ECE_BINS, "num_samples": int(before.shape[0]),
            "ece_before": expected_calibration_error(before, labels), "ece_after": expected_calibration_error(after, labels),
            "nll_before": negative_log_likelihood(logits, labels), "nll_after": negative_log_likelihood(logits, labels, temperature),
            "accuracy": float((before.argmax(axis=1) == np.asarray(labels).ravel()).mean()), "source": source}


def read_calibration(run_dir: str) -> Optional[Dict[str, Any]]:
    """A run's ``calibration.json``, or None when it was never calibrated.

    Raises:
        HapiRunnerError: the file is there but unreadable.
    """
    path = os.path.join(run_dir, CALIBRATION)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        float(record["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HapiRunnerError(f"cannot read {path} ({type(exc).__name__}: {exc}); run hapi-runner calibrate {run_dir} again.") from exc
    return record


def save_calibration(run_dir: str, record: Dict[str, Any]) -> Optional[str]:
    """Writes ``calibration.json`` and puts ``temperature`` and ``tta`` into the run's export sidecar, if it has one.

    Returns:
        The sidecar path updated, or None when the run has no export.
    """
    write_json(os.path.join(run_dir, CALIBRATION), record)
    sidecar = os.path.join(RunPaths(run_dir).inference, SIDECAR)
    if not os.path.isfile(sidecar):
        return None
    with open(sidecar, encoding="utf-8") as fh:
        fields = json.load(fh)
    fields.update(temperature=record["temperature"], tta=record.get("tta", "none"))
    write_json(sidecar, fields)
    return sidecar


class _MirroredTransform:
    """A dataset's batch transform followed by a horizontal mirror; every other attribute is the transform's own."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, images):
        return mirror(self.transform(images))

    def __getattr__(self, name):
        if name == "transform":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.transform, name)


def mirrored(data):
    """A shallow copy of a hapi_runner dataset whose samples come out mirrored (the same images, labels and order)."""
    import copy

    clone = copy.copy(data)
    clone.transform = _MirroredTransform(data.transform)
    return clone
