"""The loss ``Runner`` prepares ``paddle.Model`` with: cross-entropy, exact in distributed evaluation."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from . import distributed
from .datasets.pipeline import FILLER_LABEL


class ExactEvalCrossEntropy(paddle.nn.Layer):
    """Cross-entropy that, in evaluation, is the mean over every real sample of every rank.

    Training (gradients on) returns the rank's own mean, as
    ``paddle.nn.CrossEntropyLoss`` does; ``DataParallel`` averages the
    gradients. Evaluation (hapi's ``eval_batch`` runs under ``no_grad``)
    leaves out the fillers of the evaluation loader
    (``make_loader(..., evaluation=True)``) and sums loss and sample count
    over all ranks: every rank gets the same value, and hapi's gathered
    batch size weights it into the mean one process would compute.
    """

    def __init__(self):
        super().__init__()
        self.inner = paddle.nn.CrossEntropyLoss(ignore_index=FILLER_LABEL)

    def forward(self, logits, label):
        if paddle.is_grad_enabled():
            return self.inner(logits, label)
        per_sample = F.cross_entropy(logits, label, ignore_index=FILLER_LABEL, reduction="none")
        counted = (label != FILLER_LABEL).astype("float32").sum()
        totals = paddle.stack([per_sample.astype("float32").sum(), counted])
        if distributed.is_distributed():
            import paddle.distributed as dist

            dist.all_reduce(totals)
        # A rank whose batch holds fillers alone still gets a finite value (its count is 0 before the sum).
        return totals[0] / paddle.clip(totals[1], min=1.0)


def build_loss() -> paddle.nn.Layer:
    """``paddle.nn.CrossEntropyLoss`` in one process; :class:`ExactEvalCrossEntropy` in a launched job."""
    return ExactEvalCrossEntropy() if distributed.is_distributed() else paddle.nn.CrossEntropyLoss()
