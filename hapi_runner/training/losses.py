"""The loss ``Runner`` prepares ``paddle.Model`` with: cross-entropy with label smoothing, class weights and
soft targets, exact in distributed evaluation.

One formula covers every case. The target distribution of a sample is
``q = (1 - eps) * t + eps / C``, where ``t`` is the one-hot row of a hard
label ``[N, 1]`` int64 or a soft-target row ``[N, C]`` float (the mixed
targets of :mod:`hapi_runner.datasets.mixing`). With class weights ``w``
the loss is ``sum_i sum_k w_k q_ik (-log p_ik) / sum_i (w . t_i)``; without
weights the denominator is the sample count, so

    loss = (1 - eps) * CE(hard) + eps * mean_k(-log p_k)

as in timm's ``LabelSmoothingCrossEntropy``. For hard labels the weighted
form is torch's ``CrossEntropyLoss(weight=, label_smoothing=)``; for soft
targets torch divides by ``N`` instead, while here a one-hot soft target
gives exactly the hard-label loss. Paddle's own
``CrossEntropyLoss(label_smoothing=)`` cannot be used: Paddle 3.3.1 has no
int64 ``label_smooth`` kernel for the ``[N, 1]`` labels hapi feeds.

Evaluation fillers (label :data:`FILLER_LABEL`) have an all-zero ``t`` and
so count in neither sum.
"""

from __future__ import annotations

from typing import Optional, Sequence

import paddle
import paddle.nn.functional as F

from . import distributed
from ..config.checks import check_number
from ..datasets.pipeline import FILLER_LABEL
from ..errors import UsageError


def _target_rows(label, num_classes: int):
    """``t``: one-hot rows for hard labels (zero rows for fillers), the soft targets themselves otherwise."""
    if paddle.is_floating_point(label) and label.shape[-1] == num_classes:
        return label.astype("float32")
    flat = label.reshape([-1]).astype("int64")
    valid = flat != FILLER_LABEL
    safe = paddle.where(valid, flat, paddle.zeros_like(flat))
    return F.one_hot(safe, num_classes).astype("float32") * valid.astype("float32").unsqueeze(-1)


def cross_entropy_sums(logits, label, epsilon: float = 0.0, weight=None):
    """``(numerator, denominator)`` of the loss over this batch (see the module docstring).

    Args:
        logits: ``[N, C]`` float.
        label: hard ``[N, 1]`` (or ``[N]``) int64, or soft ``[N, C]`` float rows summing to 1.
        epsilon: label smoothing. Defaults to 0.0.
        weight: per-class weights, a ``[C]`` float32 Tensor, or None. Defaults to None.
    """
    num_classes = int(logits.shape[-1])
    targets = _target_rows(label, num_classes)
    neg_log_p = -F.log_softmax(logits.astype("float32"), axis=-1)
    valid = targets.sum(axis=-1, keepdim=True)
    smoothed = (1.0 - epsilon) * targets + (epsilon / num_classes) * valid
    if weight is not None:
        smoothed = smoothed * weight
        targets = targets * weight
    return (smoothed * neg_log_p).sum(), targets.sum()


class SmoothedCrossEntropy(paddle.nn.Layer):
    """Cross-entropy with label smoothing, class weights and soft targets; exact over ranks in evaluation.

    Training (gradients on) returns the rank's own mean, as
    ``paddle.nn.CrossEntropyLoss`` does; ``DataParallel`` averages the
    gradients. Evaluation (hapi's ``eval_batch`` runs under ``no_grad``)
    leaves out the fillers of the evaluation loader
    (``make_loader(..., evaluation=True)``) and, in a launched job, sums
    numerator and denominator over all ranks: every rank gets the same
    value, and hapi's gathered batch size weights it into the mean one
    process would compute. Evaluation uses the same smoothing as training,
    so the two losses are the same quantity.

    Args:
        epsilon: label smoothing in ``[0, 1)``. Defaults to 0.0.
        weight: one weight per class (> 0 each), or None for equal weights. Defaults to None.
    """

    def __init__(self, epsilon: float = 0.0, weight: Optional[Sequence[float]] = None):
        super().__init__()
        self.epsilon = float(check_number("label_smoothing", epsilon, 0.0, 1.0, high_open=True))
        self.class_weight = None if weight is None else paddle.to_tensor(_checked_weights(weight), dtype="float32")

    def forward(self, logits, label):
        if self.class_weight is not None and int(self.class_weight.shape[0]) != int(logits.shape[-1]):
            raise UsageError(f"class weights: {int(self.class_weight.shape[0])} given, the model has "
                             f"{int(logits.shape[-1])} classes; give one weight per class.")
        numerator, denominator = cross_entropy_sums(logits, label, self.epsilon, self.class_weight)
        if not paddle.is_grad_enabled() and distributed.is_distributed():
            totals = paddle.stack([numerator, denominator])
            import paddle.distributed as dist

            dist.all_reduce(totals)
            numerator, denominator = totals[0], totals[1]
        # A batch of fillers alone (its denominator is 0, its numerator too) gives 0, not NaN.
        return numerator / paddle.clip(denominator, min=1e-12)


# The name the loss had before smoothing and weights: it is the same loss.
ExactEvalCrossEntropy = SmoothedCrossEntropy


def _checked_weights(weight) -> list:
    values = [float(v) for v in weight]
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise UsageError(f"class weights must be finite numbers > 0, one per class; got {list(weight)[:10]!r}.")
    return values


def build_loss(label_smoothing: float = 0.0, class_weights: Optional[Sequence[float]] = None,
               soft_targets: bool = False) -> paddle.nn.Layer:
    """The run's loss.

    Plain ``paddle.nn.CrossEntropyLoss`` in one process when nothing needs
    more (so a default run computes what it always did);
    :class:`SmoothedCrossEntropy` otherwise, which is exact over ranks in a
    launched job's evaluation.

    Args:
        label_smoothing: epsilon in ``[0, 1)``. Defaults to 0.0.
        class_weights: one weight per class, or None. Defaults to None.
        soft_targets: training batches carry ``[N, C]`` float targets (Mixup, CutMix). Defaults to False.
    """
    check_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    plain = not label_smoothing and class_weights is None and not soft_targets
    if plain and not distributed.is_distributed():
        return paddle.nn.CrossEntropyLoss()
    return SmoothedCrossEntropy(label_smoothing, class_weights)
