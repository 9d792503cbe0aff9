"""Logits to the answer a person or a program reads: one function for ``predict`` and ``serve``.

``hapi-runner predict --json`` and ``POST /predict`` print the same fields
(``class_id``, ``class_name``, ``probability``, ``top_k``), computed here,
so the command and the service agree to the last digit for the same logits.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities of ``[N, classes]`` logits, in float64 (stable: the row maximum is subtracted first)."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def answers_from_logits(logits: np.ndarray, class_names: Optional[Sequence[str]], top_k: int) -> List[Dict[str, Any]]:
    """One answer per row of ``logits``: the top class and the ``top_k`` most probable ones.

    Args:
        logits: ``[N, classes]`` network outputs.
        class_names: one name per class; None names each class by its index.
        top_k: classes per answer (at most the class count).

    Returns:
        Dicts with ``class_id``, ``class_name``, ``probability`` (of the top
        class) and ``top_k`` (a list of dicts of the same three keys, most
        probable first).
    """
    probs = softmax(logits)
    k = min(int(top_k), probs.shape[1])
    answers = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        top = [{"class_id": int(i), "class_name": class_names[i] if class_names else str(i), "probability": float(row[i])}
               for i in order]
        answers.append({**top[0], "top_k": top})
    return answers
