"""What a checkpoint records about the network it holds, and what loading it into a network checks."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from .config import TrainConfig


def run_fingerprint(config: TrainConfig, input_shape: Sequence[int], num_classes: int) -> Dict[str, Any]:
    """The model, dataset, input shape, class count and config fingerprint of a run's network."""
    return {"model": config.model, "dataset": config.dataset, "input_shape": list(input_shape),
            "num_classes": int(num_classes), "config": config.fingerprint()}
