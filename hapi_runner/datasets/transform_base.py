"""What every batch transform shares: normalisation as one multiply-add, and a random stream per epoch."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class TransformBase:
    """Normalisation and the per-epoch random state of the batch transforms.

    The random state is a function of ``(seed, epoch, worker)`` alone, so a
    resumed run draws as an unbroken one.

    Attributes:
        scale, shift: ``x / 255`` then ``(x - mean) / std``, folded into ``x * scale + shift`` (``[1, C, 1, 1]``).
        seed: the run's seed.
        epoch: the epoch :meth:`set_epoch` last started.
        rng: the ``numpy.random.Generator`` of that epoch and worker.
    """

    def _start(self, mean: Sequence[float], std: Sequence[float], seed: int) -> None:
        std_arr = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self.shift = (-np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1) / std_arr).astype(np.float32)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int, worker: int = 0) -> None:
        """Restarts the random state for ``epoch`` (and a DataLoader worker)."""
        self.epoch = epoch
        self.rng = np.random.default_rng([self.seed, epoch, worker])
