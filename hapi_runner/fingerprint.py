"""What a checkpoint records about the network it holds, and what loading it into a network checks."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from .config import TrainConfig


def run_fingerprint(config: TrainConfig, input_shape: Sequence[int], num_classes: int,
                    class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The model, dataset, input shape (channels first), class count and config fingerprint of a run's network.

    ``class_names`` are recorded when given (a folder dataset's, read from its
    folders), so a folder whose classes changed is not resumed into. Defaults to None.
    """
    key = {"model": config.model, "dataset": config.dataset, "input_shape": list(input_shape),
           "num_classes": int(num_classes), "config": config.fingerprint()}
    if class_names is not None:
        key["class_names"] = ", ".join(f"'{name}'" for name in class_names)  # one string: the refusal shows it as written
    return key
