"""What a checkpoint records about the network it holds, and what loading it into a network checks."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from .config import TrainConfig


def run_fingerprint(config: TrainConfig, input_shape: Sequence[int], num_classes: int) -> Dict[str, Any]:
    """The model, dataset, input shape, class count and config fingerprint of a run's network.

    Also the training settings whose state a checkpoint carries, which a
    resume cannot change and still continue exactly: the EMA decay (on or
    off, and its value: the average so far was made with it) and the
    batches per optimizer step (the LR schedule is laid out in optimizer
    steps). Label smoothing, mixing, augmentation and clipping carry no
    state and may change on a resume, as the learning rate may.
    """
    return {"model": config.model, "dataset": config.dataset, "input_shape": list(input_shape),
            "num_classes": int(num_classes), "config": config.fingerprint(),
            "ema": "off" if config.ema is None else config.ema,
            "accumulate_grad_batches": int(config.accumulate_grad_batches)}
