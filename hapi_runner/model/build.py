"""The network a config names, built for the data, and the forward pass checked before training.

One entry point for every command that needs the network (train, evaluate,
export, summary): a built-in model (:mod:`hapi_runner.model.builtin`), a network
from the user's file or module (:mod:`hapi_runner.model.user`), or, for a
run whose network was built in Python, a one-line answer saying to pass it
again.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..errors import UsageError
from .names import is_python_object, is_user_model
from .builtin import MODELS, build_model, input_size


def network_input_size(config, dataset_size: int) -> int:
    """The side the network is fed: ``image_size`` if set, else the dataset's (padded to a built-in model's minimum)."""
    own = is_user_model(config.model) or is_python_object(config.model)
    if config.image_size is not None:
        smallest = None if own else MODELS[config.model].min_size
        if smallest is not None and config.image_size < smallest:
            raise UsageError(f"--image-size {config.image_size} is below the {smallest}x{smallest} inputs {config.model} "
                             f"takes; pass --image-size {smallest} or more.")
        return int(config.image_size)
    return int(dataset_size) if own else input_size(config.model, dataset_size)


def build_network(config, num_classes: int, channels: int, size: int):
    """The ``paddle.nn.Layer`` ``config.model`` names, for ``num_classes`` classes of ``channels``-channel ``size``-pixel images.

    Raises:
        UsageError: the run's network was built in Python (it cannot be
            rebuilt from the config), or the user's network cannot be built.
    """
    if is_python_object(config.model):
        raise UsageError(f"this run trained a network built in Python ({config.model}), which its config.json cannot "
                         f"rebuild; build it again and pass it: Runner(config, network=net) to train, "
                         f"hapi_runner.deploy.evaluate_run(RUN, network=net) or export_run(RUN, network=net).")
    if is_user_model(config.model):
        from .user import build_user_network

        return build_user_network(config.model, num_classes, channels, config.model_kwargs)
    return build_model(config.model, num_classes, channels, size, config.stem)


def check_forward(network, input_shape: Sequence[int], num_classes: int, label: str) -> None:
    """One tiny batch through ``network`` in eval mode: it must give ``[N, num_classes]``.

    Raises:
        UsageError: the forward fails, or gives another shape; the line names
            the input and output shapes and the likely fix.
    """
    import paddle

    shape = [2, *(int(s) for s in input_shape)]
    was_training = network.training
    network.eval()
    try:
        with paddle.no_grad():
            output = network(paddle.zeros(shape, dtype="float32"))
    # What a forward on the wrong input raises: Paddle's shape checks are ValueError (InvalidArgument)
    # or RuntimeError; the user's own code may raise anything else, and is reported the same way.
    except Exception as exc:
        reason = re.sub(r"\s*\(at /paddle/.*", "", " ".join(str(exc).split()))[:300] or type(exc).__name__
        raise UsageError(f"{label} fails on a {_shape(shape)} input ({type(exc).__name__}: {reason}); "
                         f"{_fix(input_shape)}.") from exc
    finally:
        if was_training:
            network.train()
    got = list(getattr(output, "shape", []) or []) if isinstance(output, paddle.Tensor) else None
    if got != [shape[0], num_classes]:
        shown = _shape(got) if got is not None else f"a {type(output).__name__}"
        raise UsageError(f"{label} maps a {_shape(shape)} input to {shown}, not [{shape[0]}, {num_classes}] "
                         f"(batch, classes); {_output_fix(got, shape[0], num_classes, input_shape)}.")


def _shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _output_fix(got, batch: int, num_classes: int, input_shape: Sequence[int]) -> str:
    """The fix for a wrong output: the class count when only it is wrong, the input size when the shape is off."""
    if got is not None and len(got) == 2 and got[0] == batch:
        # A [batch, K] output is sized right for its input: only its last layer disagrees with the data.
        return (f"it gives {got[1]} class scores for data of {num_classes} classes: give its last layer num_classes "
                f"outputs (hapi_runner passes num_classes={num_classes} to a class or function that takes that argument)")
    return f"return one logit per class, or {_fix(input_shape)}"


def _fix(input_shape: Sequence[int]) -> str:
    side = int(input_shape[-1])
    if side == 28:
        return "if it was written for 32x32 inputs (LeNet-5), pass --image-size 32"
    return f"pass the --image-size it was written for (the images are {side}x{side})"
