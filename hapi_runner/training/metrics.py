"""Classification metrics from labels and class probabilities: numpy only, no Paddle.

Every figure a report or an evaluation shows about a classifier's mistakes:
the confusion matrix, per-class precision, recall, F1 and support with
their macro and weighted means, the most confused pairs of classes, and for
two classes the ROC curve, ROC-AUC, sensitivity and specificity.

A ratio whose denominator is zero (precision of a class never predicted,
recall of a class absent from the labels) counts as 0, as scikit-learn's
``zero_division=0`` does, and a note saying so is returned beside it, so a
0 that means "undefined" is never mistaken for a measured 0.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..config.checks import check_int
from ..errors import UsageError


TOP_K = 5


def shows_top_k(num_classes: int, k: int = TOP_K) -> bool:
    """True when top-``k`` accuracy tells something: with ``k`` classes or fewer every label is in the top ``k``, so it is always 1."""
    return num_classes > k


def check_inputs(labels, probs) -> Tuple[np.ndarray, np.ndarray]:
    """``labels`` as int64 ``[N]`` and ``probs`` as float64 ``[N, C]``, or UsageError saying what is wrong."""
    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise UsageError(f"probabilities must be an [N, classes] array with 2 classes or more, got shape {probs.shape}.")
    if len(labels) != len(probs):
        raise UsageError(f"{len(labels)} labels for {len(probs)} rows of probabilities; give one label per row.")
    if len(labels) == 0:
        raise UsageError("no samples: metrics need at least one label and its probabilities.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"labels must be class indices (integers), got {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise UsageError(f"labels must lie in [0, {probs.shape[1] - 1}] for {probs.shape[1]} classes, "
                         f"got {int(labels.min())}..{int(labels.max())}.")
    return labels.astype(np.int64), probs


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` as an int64 ``[C, C]`` matrix (rows: the true class)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` elementwise, 0 where the denominator is 0 (counts or scores alike)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=np.asarray(denominator) > 0)


def per_class_scores(confusion, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Precision, recall, F1 and support per class, with their macro and weighted means.

    Args:
        confusion: ``[C, C]`` counts, rows the true class.
        class_names: one name per class, for the notes. Defaults to ``class_<i>``.

    Returns:
        ``precision``, ``recall``, ``f1`` (float lists), ``support`` (int list),
        ``macro`` and ``weighted`` (dicts of the three scores), and ``notes``:
        one line per score that was undefined and counted as 0.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(len(confusion))]
    hits = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    notes = [f"precision of '{names[i]}' is undefined (never predicted); counted as 0" for i in np.flatnonzero(predicted == 0)]
    notes += [f"recall of '{names[i]}' is undefined (no sample of it); counted as 0" for i in np.flatnonzero(support == 0)]
    total = support.sum()
    weights = support / total if total else np.zeros(len(support))
    scores = {"precision": precision, "recall": recall, "f1": f1}
    return {
        **{key: value.tolist() for key, value in scores.items()},
        "support": support.tolist(),
        "macro": {key: float(value.mean()) for key, value in scores.items()},
        "weighted": {key: float((value * weights).sum()) for key, value in scores.items()},
        "notes": notes,
    }


def most_confused(confusion, class_names: Optional[Sequence[str]] = None, top: int = 5) -> List[Dict[str, Any]]:
    """The off-diagonal cells with the most samples, largest first (ties: lower true, then predicted index).

    Each entry: ``true``, ``predicted`` (indices), ``true_name``,
    ``predicted_name``, ``count`` and ``fraction`` (of the true class's samples).
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(len(confusion))]
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off.ravel(), kind="stable")
    rows = confusion.sum(axis=1)
    pairs = []
    for flat in order[:top]:
        count = int(off.ravel()[flat])
        if count == 0:
            break
        i, j = divmod(int(flat), len(confusion))
        pairs.append({"true": i, "predicted": j, "true_name": names[i], "predicted_name": names[j],
                      "count": count, "fraction": count / int(rows[i])})
    return pairs


def average_ranks(values) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of the last member of each group of equal values
    return ((last - (counts - 1) / 2.0)[inverse]).astype(np.float64)


def roc_auc(positive, scores) -> Optional[float]:
    """Area under the ROC curve: the Mann-Whitney U statistic over ``n_pos * n_neg``.

    The chance that a random positive scores above a random negative, a tie
    counting one half. None when either class is absent (the area is undefined).

    Args:
        positive: booleans ``[N]``, True for the positive class.
        scores: ``[N]``, higher meaning more likely positive.
    """
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(scores)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def roc_curve(positive, scores) -> Dict[str, List[float]]:
    """ROC points, one per distinct score used as threshold (``score >= t`` is positive), from (0, 0) to (1, 1).

    Returns:
        ``fpr``, ``tpr`` and ``thresholds`` (the first is +inf: nothing
        predicted positive). Rates are 0 throughout for a class that is absent.
    """
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    # The last index of each run of equal scores: a threshold takes the whole run at once.
    ends = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]
    true_pos = np.cumsum(hits)[ends]
    false_pos = (ends + 1) - true_pos
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    tpr = np.r_[0.0, true_pos / n_pos if n_pos else np.zeros(len(ends))]
    fpr = np.r_[0.0, false_pos / n_neg if n_neg else np.zeros(len(ends))]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": [float("inf"), *ranked[ends].tolist()]}


def sensitivity_specificity(confusion, positive: int = 1) -> Dict[str, float]:
    """Sensitivity (recall of ``positive``) and specificity (recall of the other class) of a 2x2 confusion matrix.

    An undefined rate (no sample of that class) is 0, like the per-class scores.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.shape != (2, 2):
        raise UsageError(f"sensitivity and specificity need two classes, got a {confusion.shape[0]}-class confusion matrix.")
    check_int("positive", positive, 0, 1)
    negative = 1 - positive
    tp, fn = confusion[positive, positive], confusion[positive, negative]
    tn, fp = confusion[negative, negative], confusion[negative, positive]
    return {"sensitivity": float(tp / (tp + fn)) if tp + fn else 0.0,
            "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
            "true_positives": int(tp), "false_negatives": int(fn), "true_negatives": int(tn), "false_positives": int(fp)}


def binary_metrics(labels, probs, positive: int = 1) -> Dict[str, Any]:
    """ROC-AUC, the ROC curve, sensitivity and specificity (at the argmax) for two classes; ``positive`` is the class index."""
    labels, probs = check_inputs(labels, probs)
    if probs.shape[1] != 2:
        raise UsageError(f"binary metrics need two classes, got {probs.shape[1]}.")
    check_int("positive", positive, 0, 1)
    is_positive = labels == positive
    scores = probs[:, positive]
    confusion = confusion_matrix(labels, probs.argmax(axis=1), 2)
    return {"positive_class": positive, "roc_auc": roc_auc(is_positive, scores), "roc": roc_curve(is_positive, scores),
            **sensitivity_specificity(confusion, positive)}


def classification_report(labels, probs, class_names: Optional[Sequence[str]] = None, *, positive: int = 1,
                          top_confused: int = 5) -> Dict[str, Any]:
    """Everything above for one evaluation, predictions taken at the argmax.

    Args:
        labels: true class indices ``[N]``.
        probs: class probabilities (or any scores whose argmax is the prediction) ``[N, C]``.
        class_names: one per class. Defaults to ``class_<i>``.
        positive: with two classes, the index of the positive class. Defaults to 1.
        top_confused: how many confused pairs to list. Defaults to 5.

    Returns:
        ``num_samples``, ``accuracy``, ``confusion_matrix`` (list of lists),
        the keys of :func:`per_class_scores`, ``most_confused``, and
        ``binary`` (:func:`binary_metrics`, or None with more than two classes).
    """
    labels, probs = check_inputs(labels, probs)
    num_classes = probs.shape[1]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise UsageError(f"{len(names)} class names for {num_classes} classes of probabilities; give one name per class.")
    predicted = probs.argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, num_classes)
    return {
        "num_samples": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "confusion_matrix": confusion.tolist(),
        **per_class_scores(confusion, names),
        "most_confused": most_confused(confusion, names, top_confused),
        "binary": binary_metrics(labels, probs, positive) if num_classes == 2 else None,
    }


def without_roc_points(evaluation: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of :func:`classification_report`'s result without the ROC points.

    What results.json and ``hapi-runner evaluate`` keep: the points grow with
    the number of samples, and the report draws them.
    """
    copy = dict(evaluation)
    if copy.get("binary") is not None:
        copy["binary"] = {key: value for key, value in copy["binary"].items() if key != "roc"}
    return copy


def format_per_class(evaluation: Dict[str, Any], class_names: Sequence[str]) -> str:
    """A short text table of precision, recall, F1 and support per class, and the ROC-AUC line for two classes."""
    width = max(len("class"), *(len(str(name)) for name in class_names))
    lines = [f"{'class':<{width}}  precision  recall      F1  support"]
    for i, name in enumerate(class_names):
        lines.append(f"{str(name):<{width}}  {evaluation['precision'][i]:9.4f}  {evaluation['recall'][i]:6.4f}  "
                     f"{evaluation['f1'][i]:6.4f}  {evaluation['support'][i]:7d}")
    macro = evaluation["macro"]
    lines.append(f"{'macro':<{width}}  {macro['precision']:9.4f}  {macro['recall']:6.4f}  {macro['f1']:6.4f}")
    binary = evaluation.get("binary")
    if binary is not None:
        auc = "undefined (one class absent)" if binary["roc_auc"] is None else f"{binary['roc_auc']:.4f}"
        lines.append(f"positive class {class_names[binary['positive_class']]}: ROC-AUC {auc}, "
                     f"sensitivity {binary['sensitivity']:.4f}, specificity {binary['specificity']:.4f}")
    return "\n".join(lines)
