"""Confident learning: which given labels disagree with out-of-sample probabilities, written from the paper.

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70 (2021). With ``n`` examples, given labels ``y~``
and out-of-sample probabilities ``p`` (``[n, K]``):

* the threshold of class ``j`` is the mean probability of ``j`` over the
  examples labelled ``j`` (its average self-confidence);
* an example is counted in the confident joint ``C[y~, y*]``, where ``y*``
  is the most probable of the classes whose probability reaches their
  threshold (an example that reaches none is not counted);
* the joint is calibrated so each row sums to the number of examples given
  that label, and normalised: ``Q[i, j]``, the estimated share of examples
  labelled ``i`` whose true class is ``j``;
* label issues: ``cj`` takes the off-diagonal of the confident joint,
  ``noise-rate`` (the paper's prune-by-noise-rate) takes, for each
  off-diagonal cell, the ``n * Q[i, j]`` examples labelled ``i`` with the
  largest margin ``p[j] - p[i]``, and ``both`` (the paper's C+NR) those two
  agree on;
* the issues are ranked by self-confidence ``p[y~]``, lowest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..config.checks import check_choice
from ..errors import UsageError

METHODS = ("both", "cj", "noise-rate")


@dataclass
class LabelIssues:
    """What :func:`find_label_issues` returns.

    Attributes:
        indices: the flagged examples, most suspicious first.
        suggested: for each flagged example, the class it more likely is.
        self_confidence: ``p[i, y~_i]`` of every example.
        thresholds: per-class thresholds.
        confident_joint: ``[K, K]`` counts (rows: given label, columns: the likely class).
        noise_matrix: the calibrated, normalised joint ``Q``.
    """

    indices: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    thresholds: np.ndarray
    confident_joint: np.ndarray
    noise_matrix: np.ndarray


def _check(labels: np.ndarray, probs: np.ndarray) -> None:
    if probs.ndim != 2 or len(probs) != len(labels):
        raise UsageError(f"probabilities of shape {probs.shape} do not match {len(labels)} labels; pass [n, classes].")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise UsageError(f"labels must lie in 0..{probs.shape[1] - 1}; got {labels.min()}..{labels.max()}.")


def thresholds_of(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class mean self-confidence; a class nobody is labelled with gets 1 (nothing reaches it by chance)."""
    sums = np.zeros(probs.shape[1])
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=probs.shape[1])
    return np.divide(sums, counts, out=np.ones_like(sums), where=counts > 0)


def confident_joint(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(C, y*)``: the ``[K, K]`` confident joint and each example's likely class (-1 when no class is confident)."""
    above = probs >= thresholds[None, :]
    masked = np.where(above, probs, -1.0)
    likely = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((probs.shape[1], probs.shape[1]), dtype=np.int64)
    counted = likely >= 0
    np.add.at(joint, (labels[counted], likely[counted]), 1)
    return joint, likely


def calibrated(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``Q``: rows scaled to the given-label counts, then the whole divided by ``n``."""
    counts = np.bincount(labels, minlength=len(joint)).astype(np.float64)
    rows = joint.sum(axis=1, keepdims=True).astype(np.float64)
    scaled = np.divide(joint * counts[:, None], rows, out=np.zeros(joint.shape), where=rows > 0)
    total = scaled.sum()
    return scaled / total if total else scaled


def _noise_rate_pick(labels: np.ndarray, probs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The class each example is pruned towards by prune-by-noise-rate, or -1."""
    picked = np.full(len(labels), -1)
    n = len(labels)
    for i in range(noise.shape[0]):
        members = np.flatnonzero(labels == i)
        for j in range(noise.shape[1]):
            count = int(round(n * noise[i, j]))
            if i == j or count == 0 or not len(members):
                continue
            margin = probs[members, j] - probs[members, i]
            for index in members[np.argsort(-margin, kind="stable")[:count]]:
                if picked[index] < 0:
                    picked[index] = j
    return picked


def find_label_issues(labels, probs, method: str = "both") -> LabelIssues:
    """The examples whose given label looks wrong, ranked.

    Args:
        labels: int ``[n]`` given labels.
        probs: float ``[n, K]`` out-of-sample probabilities (rows sum to 1).
        method: ``both`` (C+NR), ``cj`` or ``noise-rate``. Defaults to ``both``.
    """
    check_choice("method", method, METHODS)
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    _check(labels, probs)
    thresholds = thresholds_of(labels, probs)
    joint, likely = confident_joint(labels, probs, thresholds)
    noise = calibrated(joint, labels)
    off_diagonal = (likely >= 0) & (likely != labels)
    pruned = _noise_rate_pick(labels, probs, noise)
    flagged = {"cj": off_diagonal, "noise-rate": pruned >= 0, "both": off_diagonal & (pruned >= 0)}[method]
    suggested_all = np.where(likely >= 0, likely, pruned)
    self_conf = probs[np.arange(len(labels)), labels]
    indices = np.flatnonzero(flagged)
    indices = indices[np.argsort(self_conf[indices], kind="stable")]
    return LabelIssues(indices, suggested_all[indices], self_conf, thresholds, joint, noise)
