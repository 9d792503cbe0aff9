"""Loss weights per class from a training set's labels (``--class-weights auto``)."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def inverse_frequency(labels: Sequence[int], num_classes: int) -> List[float]:
    """One weight per class, proportional to 1 / (its training images), scaled to a mean of 1.

    A class without training images counts as one (the loss refuses a zero
    weight, and no training sample carries it anyway). ``[0.5, 1.5]`` for 30
    images of class 0 and 10 of class 1.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64).reshape(-1), minlength=num_classes)[:num_classes]
    weights = 1.0 / np.maximum(counts, 1)
    return [float(w) for w in weights * (num_classes / weights.sum())]
