"""Mixup and CutMix on whole batches, with the soft targets the loss needs.

The semantics are timm's ``Mixup`` in batch mode: with probability
``prob`` a batch is mixed, ``lam ~ Beta(alpha, alpha)``, and each image is
paired with the one at the mirrored position of the batch (the batch
flipped). Mixup blends the pair, ``lam * x + (1 - lam) * x_flipped``;
CutMix pastes a box of area about ``1 - lam`` from the partner and then
sets ``lam`` to the uncovered fraction, as the box is clipped at the image
border. With both alphas above 0, each mixed batch uses CutMix with
probability ``switch_prob``, else Mixup. The targets are
``lam * onehot(y) + (1 - lam) * onehot(y_flipped)``, float32 ``[N, C]``,
for every batch (an unmixed one gets one-hot rows), so the label tensor
keeps one shape and dtype through an epoch. Label smoothing is the loss's
job (:mod:`hapi_runner.training.losses`), not done here.

Mixing is linear, so it gives the same result before or after the affine
normalisation; it runs on the normalised float batch the collate returns.
A batch's draws come from a generator keyed by ``(seed, epoch, worker,
batch number within that worker)``, so they do not depend on how much
randomness earlier batches used, and a resumed run mixes as an
uninterrupted one. This module imports nothing of the package, so the
pipeline can import it without a cycle.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

# The generator stream of mixing, apart from the transform's own (seed, epoch, worker) stream.
MIX_STREAM = 7919


class BatchMixing:
    """Mixup / CutMix of one batch.

    Args:
        num_classes: the width of the soft targets.
        mixup_alpha: Beta parameter of Mixup; 0 turns Mixup off. Defaults to 0.0.
        cutmix_alpha: Beta parameter of CutMix; 0 turns CutMix off. Defaults to 0.0.
        prob: probability that a batch is mixed at all. Defaults to 1.0.
        switch_prob: with both alphas > 0, the probability of CutMix for a mixed batch. Defaults to 0.5.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0, switch_prob: float = 0.5):
        self.num_classes = int(num_classes)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)

    def describe(self) -> str:
        """One line for the run's log: what is mixed, and what the training accuracy then means."""
        kinds = [f"{name} alpha {alpha:g}" for name, alpha in (("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha))
                 if alpha > 0]
        if not self.active:
            return "batch mixing: off"
        switch = f", cutmix for {self.switch_prob:.0%} of them" if len(kinds) == 2 else ""
        return (f"batch mixing: {' and '.join(kinds)} on {self.prob:.0%} of the training batches{switch}; "
                f"training accuracy is measured against each mixed image's dominant label, evaluation is unmixed.")

    @property
    def active(self) -> bool:
        """True when some batch can be mixed."""
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def draw(self, rng: np.random.Generator) -> Tuple[str, float]:
        """``(kind, lam)`` for one batch: kind ``none``, ``mixup`` or ``cutmix``."""
        if not self.active or rng.random() >= self.prob:
            return "none", 1.0
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            kind = "cutmix" if rng.random() < self.switch_prob else "mixup"
        else:
            kind = "cutmix" if self.cutmix_alpha > 0 else "mixup"
        alpha = self.cutmix_alpha if kind == "cutmix" else self.mixup_alpha
        return kind, float(rng.beta(alpha, alpha))

    def __call__(self, images: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, dict]:
        """Mixes ``images`` float ``[N, C, H, W]`` and int ``labels`` ``[N]`` or ``[N, 1]``.

        Returns:
            ``(images, targets, info)``: the mixed batch (a new array), float32
            ``[N, num_classes]`` targets, and ``{"kind", "lam", "box"}`` (the
            CutMix box ``(top, bottom, left, right)`` or None).
        """
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        onehot = np.eye(self.num_classes, dtype=np.float32)[labels]
        kind, lam = self.draw(rng)
        box = None
        if kind == "mixup":
            weight = np.float32(lam)
            images = images * weight + images[::-1] * (np.float32(1.0) - weight)
        elif kind == "cutmix":
            box = cutmix_box(images.shape[-2], images.shape[-1], lam, rng)
            top, bottom, left, right = box
            images = images.copy()
            images[..., top:bottom, left:right] = images[::-1, ..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / float(images.shape[-2] * images.shape[-1])
        targets = (np.float32(lam) * onehot + np.float32(1.0 - lam) * onehot[::-1]).astype(np.float32)
        return images, targets, {"kind": kind, "lam": lam, "box": box}


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """timm's ``rand_bbox``: a box of sides ``sqrt(1 - lam)`` of the image's, centred uniformly, clipped.

    Returns:
        ``(top, bottom, left, right)``, half-open.
    """
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    centre_y, centre_x = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([centre_y - cut_h // 2, centre_y + cut_h // 2], 0, height)
    left, right = np.clip([centre_x - cut_w // 2, centre_x + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def _worker_id() -> int:
    """0 in the main process, ``k + 1`` in DataLoader worker ``k`` (as the transform's reseed numbers them)."""
    try:
        from paddle.io import get_worker_info
    except ImportError:  # a Paddle without worker info: the main process's numbering
        return 0
    info = get_worker_info()
    return 0 if info is None else int(info.id) + 1


class MixingCollate:
    """Wraps a loader's collate (``[images, labels]`` out) and mixes each batch it returns.

    The epoch is the dataset transform's (``transform.epoch``, which the
    loader's ``set_epoch`` sets every epoch); the batch number restarts at 0
    when it changes.

    Args:
        collate: the inner collate function (the pipeline's batched or per-sample one).
        mixing: the :class:`BatchMixing`.
        transform: the dataset's transform, whose ``epoch`` this follows. Defaults to None (epoch 0).
        seed: base of the random state. Defaults to 0.
    """

    def __init__(self, collate, mixing: BatchMixing, transform=None, seed: int = 0):
        self.inner = collate
        self.transform = transform
        self.mixing = mixing
        self.seed = int(seed)
        self._epoch: Optional[int] = None
        self._count = 0
        self.last_info: Optional[dict] = None

    def _current_epoch(self) -> int:
        return int(getattr(self.transform, "epoch", 0))

    def rng_for(self, epoch: int, worker: int, batch: int) -> np.random.Generator:
        """The generator of one batch."""
        return np.random.default_rng([self.seed, epoch, worker, batch, MIX_STREAM])

    def __call__(self, samples):
        images, labels = self.inner(samples)
        epoch = self._current_epoch()
        if epoch != self._epoch:
            self._epoch, self._count = epoch, 0
        rng = self.rng_for(epoch, _worker_id(), self._count)
        self._count += 1
        mixed, targets, self.last_info = self.mixing(np.asarray(images), np.asarray(labels), rng)
        return [mixed, targets]
