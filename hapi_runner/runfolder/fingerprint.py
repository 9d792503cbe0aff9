"""What a checkpoint records about the network it holds, and what loading it into a network checks."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from ..config.train_config import TrainConfig
from ..model.names import is_user_model


def run_fingerprint(config: TrainConfig, input_shape: Sequence[int], num_classes: int, *, network: Optional[Any] = None,
                    class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The model, dataset, input shape (channels first), class count and config fingerprint of a run's network.

    With ``network``, also the shape of every tensor of its state (``parameters``),
    and for a network from the user's file or module the ``model_kwargs`` it
    was built with: an edited network is then refused by name of the tensor
    that changed, not by a failure deep inside Paddle. ``class_names`` are
    recorded when given (a folder dataset's, read from its folders), so a
    folder whose classes changed is not resumed into. Both default to None.

    Also the training settings whose state a checkpoint carries, which a
    resume cannot change and still continue exactly: the EMA decay (on or
    off, and its value: the average so far was made with it) and the
    batches per optimizer step (the LR schedule is laid out in optimizer
    steps). Label smoothing, mixing, augmentation and clipping carry no
    state and may change on a resume, as the learning rate may.
    """
    fingerprint = {"model": config.model, "dataset": config.dataset, "input_shape": list(input_shape),
                   "num_classes": int(num_classes), "config": config.fingerprint(),
                   "ema": "off" if config.ema is None else config.ema,
                   "accumulate_grad_batches": int(config.accumulate_grad_batches)}
    if is_user_model(config.model):
        fingerprint["model_kwargs"] = dict(config.model_kwargs)
    if network is not None:
        fingerprint["parameters"] = {name: [int(s) for s in value.shape] for name, value in network.state_dict().items()}
    if class_names is not None:
        fingerprint["class_names"] = class_names_text(class_names)
    return fingerprint


def class_names_text(class_names: Sequence[str]) -> str:
    """A fingerprint's ``class_names``: one string (``'cat', 'dog'``), so a refusal shows it as written."""
    return ", ".join(f"'{name}'" for name in class_names)
