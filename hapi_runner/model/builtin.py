"""paddle.vision models by name, adapted to the dataset they train on.

Adaptation, and why:

* Input channels: the first convolution is rebuilt for the dataset's channel
  count (1 for the MNIST family), as seed 000's ResNet-50 does with its
  1-channel stem. Replicating the grey channel three times instead would
  triple the input work and memory for no gain in accuracy; pretrained
  3-channel stems are still usable because :func:`load_pretrained` sums their
  kernels over the input channels.
* Classes: ``num_classes`` goes to the paddle.vision constructor.
* Input size: models whose five stride-2 stages cannot shrink 28 pixels
  (VGG, DenseNet) see MNIST zero-padded to 32x32, as seed 004 does. LeNet's
  first classifier layer is sized to the input. VGG keeps paddle.vision's
  stock 7x7 adaptive pool and 25,088-wide classifier at 32x32 input;
  ``summary`` shows what that costs.
* ``stem='cifar'`` (ResNets only): a 3x3 stride-1 first convolution and no
  max-pool, the usual choice for 32x32 images.

The name table is importable without Paddle.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

from ..config.checks import check_choice
from ..training.distributed import say
from ..errors import UsageError

log = logging.getLogger("hapi_runner")


@dataclass(frozen=True)
class ModelSpec:
    """A paddle.vision model: its factory in ``paddle.vision.models``, family and smallest input side."""

    factory: str
    family: str
    min_size: int = 28
    kwargs: tuple = ()


def _table() -> Dict[str, ModelSpec]:
    table = {"lenet": ModelSpec("LeNet", "lenet")}
    for depth in (11, 13, 16, 19):
        table[f"vgg{depth}"] = ModelSpec(f"vgg{depth}", "vgg", 32)
        table[f"vgg{depth}_bn"] = ModelSpec(f"vgg{depth}", "vgg", 32, (("batch_norm", True),))
    for depth in (18, 34, 50, 101, 152):
        table[f"resnet{depth}"] = ModelSpec(f"resnet{depth}", "resnet")
    table["wide_resnet50_2"] = ModelSpec("wide_resnet50_2", "resnet")
    table["resnext50_32x4d"] = ModelSpec("resnext50_32x4d", "resnet")
    table["mobilenet_v1"] = ModelSpec("mobilenet_v1", "mobilenet")
    table["mobilenet_v2"] = ModelSpec("mobilenet_v2", "mobilenet")
    table["mobilenet_v3_small"] = ModelSpec("mobilenet_v3_small", "mobilenet")
    table["mobilenet_v3_large"] = ModelSpec("mobilenet_v3_large", "mobilenet")
    table["shufflenet_v2_x1_0"] = ModelSpec("shufflenet_v2_x1_0", "shufflenet")
    table["densenet121"] = ModelSpec("densenet121", "densenet", 32)
    return table


MODELS: Dict[str, ModelSpec] = _table()


def input_size(name: str, dataset_size: int) -> int:
    """The side the model is fed: the dataset's, padded up to the model's minimum."""
    return max(dataset_size, MODELS[name].min_size)


def build_model(name: str, num_classes: int, channels: int = 3, size: int = 32, stem: str = "default"):
    """Builds a paddle.vision model adapted to the data.

    Args:
        name: a key of :data:`MODELS` (``--list-models``).
        num_classes: number of output classes.
        channels: input channels. Defaults to 3.
        size: input side after padding (see :func:`input_size`). Defaults to 32.
        stem: ``default`` (paddle.vision's) or ``cifar`` (ResNets: 3x3
            stride-1 conv, no max-pool). Defaults to ``default``.

    Returns:
        A ``paddle.nn.Layer`` mapping ``[N, channels, size, size]`` to
        ``[N, num_classes]`` logits.
    """
    from paddle.vision import models as pvm

    check_choice("model", name, sorted(MODELS))
    spec = MODELS[name]
    if size < spec.min_size:
        raise UsageError(f"model {name} needs inputs of at least {spec.min_size}x{spec.min_size}, got {size}x{size}; "
                         f"pass --image-size {spec.min_size} or more.")
    if stem == "cifar" and spec.family != "resnet":
        raise UsageError(f"stem 'cifar' applies to ResNets only, not {name}; drop --stem or pick a resnet.")
    factory = getattr(pvm, spec.factory)
    if spec.family == "lenet":
        model = factory(num_classes=num_classes)
        _fit_lenet(model, channels, size)
        return model
    model = factory(num_classes=num_classes, **dict(spec.kwargs))
    if stem == "cifar":
        _cifar_stem(model)
    _set_input_channels(model, channels)
    return model


def _fit_lenet(model, channels: int, size: int) -> None:
    import paddle.nn as nn

    if channels != 1:
        model.features[0] = nn.Conv2D(channels, 6, 3, stride=1, padding=1)
    # conv3/pad1 keeps the side, pool halves it, conv5 removes 4, pool halves it.
    side = (size // 2 - 4) // 2
    if side != 5:
        model.fc[0] = nn.Linear(16 * side * side, 120)


def _cifar_stem(model) -> None:
    import paddle.nn as nn

    model.conv1 = nn.Conv2D(3, 64, 3, stride=1, padding=1, bias_attr=False)
    model.maxpool = nn.Identity()


def _set_input_channels(model, channels: int) -> None:
    """Rebuilds the first convolution when the data has other than 3 channels."""
    from ..paddle_compat import conv_groups, rebuild_conv

    parent, attr, conv = first_conv(model)
    if conv.weight.shape[1] * conv_groups(conv) != channels:
        setattr(parent, attr, rebuild_conv(conv, in_channels=channels))


def load_pretrained(model, path: str, fresh: Sequence[str] = ()) -> Dict[str, Any]:
    """Loads a ``.pdparams`` into ``model``, matching what can be matched, and says so in one line.

    A stem kernel with another number of input channels is adapted (summed
    over channels for grey input, spread evenly for colour input); any other
    tensor of another shape (a classifier for other classes) is skipped with
    a warning. The line printed at the end is :func:`describe_pretrained`'s.
    The tensors of the sublayers named in ``fresh`` (``fc``: ``fc.weight``,
    ``fc.bias``) are not loaded: they keep the model's own initialisation
    (``--reset-head``).

    Returns:
        ``{"loaded": [...], "adapted": [...], "skipped": [...], "missing": [...],
        "fresh": [...], "shapes": {key: [shape in the file, shape in the model]}}``,
        the shapes given for the adapted and skipped tensors.

    Raises:
        UsageError: ``path`` is not a file.
        HapiRunnerError: the file cannot be read as a state dict, or shares
            no tensor with ``model``.
    """
    from ..errors import HapiRunnerError

    source = _read_state_dict(path)
    kept = [key for key in source if any(key == name or key.startswith(name + ".") for name in fresh)]
    new_state, report = _match_state(model.state_dict(), {k: v for k, v in source.items() if k not in kept})
    report["fresh"] = [key for key in kept if key in new_state]
    report["missing"] = [key for key in report["missing"] if key not in report["fresh"]]
    if not report["loaded"] and not report["adapted"]:
        raise HapiRunnerError(f"pretrained weights '{path}' share no tensor with {type(model).__name__}; are they for another model?")
    model.set_state_dict(new_state)
    say(f"hapi_runner: {describe_pretrained(path, report)}")
    return report


def _read_state_dict(path: str) -> dict:
    import pickle

    import paddle

    from ..errors import HapiRunnerError

    if not os.path.isfile(path):
        raise UsageError(f"pretrained weights '{path}' do not exist; pass the path of a .pdparams file.")
    try:
        source = paddle.load(path)
    # What a file that is not a paddle.save pickle raises: Paddle 3 reports it as a ValueError after
    # trying every format it knows; an empty or cut pickle ends in EOFError; Paddle 2.6 lets pickle's
    # own error through; a pickle of classes not installed here fails to import them.
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, ImportError) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise HapiRunnerError(f"pretrained weights '{path}' cannot be read ({reason}); is it a .pdparams file saved by paddle.save?") from exc
    if not isinstance(source, dict):
        raise HapiRunnerError(f"pretrained weights '{path}' hold a {type(source).__name__}, not a state dict of tensors.")
    return source


def _match_state(target: dict, source: dict):
    """``(state to set, report)``: ``source``'s tensors where they fit ``target``, adapted stems, fresh ones elsewhere."""
    import numpy as np

    report: Dict[str, Any] = {"loaded": [], "adapted": [], "skipped": [], "missing": [], "shapes": {}}
    new_state = {}
    for key, param in target.items():
        if key not in source:
            report["missing"].append(key)
            new_state[key] = param  # keep the fresh initialisation
            continue
        value = np.asarray(source[key])
        want = list(param.shape)
        if list(value.shape) == want:
            new_state[key] = value
            report["loaded"].append(key)
            continue
        report["shapes"][key] = [list(value.shape), want]
        if value.ndim == 4 and len(want) == 4 and value.shape[0] == want[0] and value.shape[2:] == tuple(want[2:]):
            summed = value.sum(axis=1, keepdims=True)
            new_state[key] = np.repeat(summed / want[1], want[1], axis=1).astype(value.dtype)
            report["adapted"].append(key)
        else:
            report["skipped"].append(key)
            new_state[key] = param
            log.warning("pretrained: skipped %s (shape %s in the file, %s in the model)", key, list(value.shape), want)
    return new_state, report


def describe_pretrained(path: str, report: Dict[str, Any], listed: int = 4) -> str:
    """One line from :func:`load_pretrained`'s report: what was loaded, adapted, skipped and missing, from which file.

    Shapes read file->model, e.g. ``pretrained weights from r18.pdparams: 120
    tensors loaded, 1 adapted (conv1.weight 3->1 channels), 2 skipped
    (fc.weight [512, 1000]->[512, 10], fc.bias [1000]->[10])``. Tensors of the
    model that the file lacks keep their initialisation.

    Args:
        path: the file the weights came from.
        report: :func:`load_pretrained`'s return value.
        listed: at most this many names are given per kind. Defaults to 4.
    """
    shapes = report.get("shapes", {})

    def names(keys, detail):
        shown = [detail(k) for k in keys[:listed]]
        more = f", {len(keys) - listed} more" if len(keys) > listed else ""
        return f" ({', '.join(shown)}{more})" if keys else ""

    def channels(key):
        held, want = shapes.get(key, ([0, "?"], [0, "?"]))
        return f"{key} {held[1]}->{want[1]} channels"

    def shape(key):
        held, want = shapes.get(key, ("?", "?"))
        return f"{key} {held}->{want}"

    parts = [f"{len(report['loaded'])} tensors loaded",
             f"{len(report['adapted'])} adapted{names(report['adapted'], channels)}",
             f"{len(report['skipped'])} skipped{names(report['skipped'], shape)}"]
    if report.get("fresh"):
        parts.append(f"{len(report['fresh'])} left at their fresh initialisation{names(report['fresh'], str)}")
    if report["missing"]:
        parts.append(f"{len(report['missing'])} not in the file{names(report['missing'], str)}")
    return f"pretrained weights from {path}: {', '.join(parts)}"


def first_conv(model) -> Tuple[object, str, object]:
    """``(parent, attribute name, layer)`` of the first Conv2D in ``model``."""
    import paddle.nn as nn

    for name, layer in model.named_sublayers():
        if isinstance(layer, nn.Conv2D):
            parent = model
            *path, attr = name.split(".")
            for part in path:
                parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
            return parent, attr, layer
    raise ValueError(f"{type(model).__name__} has no Conv2D layer")
