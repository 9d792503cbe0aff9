"""Fine-tuning: paddle.vision's ImageNet weights, the classifier, a frozen or slower backbone.

``--pretrained imagenet`` takes the weights paddle.vision publishes for a
built-in model (the URL and md5 of its ``model_urls`` table), from where
Paddle caches them (``paddle.utils.download.WEIGHTS_HOME``,
``~/.cache/paddle/hapi/weights``), downloading them there when allowed.

The classifier is the network's ``classifier_layer`` attribute when it has
one (the name of a sublayer, for the user's own networks), else the top-level
sublayer that holds the last ``paddle.nn.Linear`` in definition order:
``fc`` for ResNets, LeNet and MobileNet v1, ``classifier`` for VGG and
MobileNet v2/v3, ``_fc`` for ShuffleNet, ``out`` for DenseNet.
``--freeze-backbone`` trains it alone (``stop_gradient`` on every other
parameter; the backbone's batch norms keep their running statistics, in
train mode too); ``--backbone-lr-mult F`` trains the rest at F times the
rate (each parameter's ``optimize_attr['learning_rate']``, the multiplier Paddle
2.6 and 3.x apply on top of the optimizer's rate).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import HapiRunnerError, UsageError
from ..paddle_compat import keep_batch_norm_statistics
from .builtin import MODELS
from ..datasets.sources import md5_of

IMAGENET = "imagenet"
# Our model name -> (paddle.vision.models module, key of its model_urls).
_PUBLISHED = {
    **{f"resnet{d}": ("resnet", f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "wide_resnet50_2": ("resnet", "wide_resnet50_2"),
    "resnext50_32x4d": ("resnet", "resnext50_32x4d"),
    "vgg16": ("vgg", "vgg16"),
    "vgg19": ("vgg", "vgg19"),
    "mobilenet_v1": ("mobilenetv1", "mobilenetv1_1.0"),
    "mobilenet_v2": ("mobilenetv2", "mobilenetv2_1.0"),
    "mobilenet_v3_small": ("mobilenetv3", "mobilenet_v3_small_x1.0"),
    "mobilenet_v3_large": ("mobilenetv3", "mobilenet_v3_large_x1.0"),
    "shufflenet_v2_x1_0": ("shufflenetv2", "shufflenet_v2_x1_0"),
    "densenet121": ("densenet", "densenet121"),
}


def imagenet_source(model: str) -> Tuple[str, str]:
    """``(url, md5)`` of paddle.vision's ImageNet weights for ``model``; UsageError when it publishes none."""
    import importlib

    if model not in _PUBLISHED:
        have = ", ".join(sorted(_PUBLISHED))
        what = "a network of your own" if model not in MODELS else model
        raise UsageError(f"paddle.vision publishes no ImageNet weights for {what}; they exist for {have}. "
                         f"Pass --pretrained PATH to a .pdparams file instead.")
    module, key = _PUBLISHED[model]
    url, md5 = importlib.import_module(f"paddle.vision.models.{module}").model_urls[key]
    return url, md5


def imagenet_weights(model: str, download: bool = True) -> str:
    """The path of ``model``'s ImageNet weights in Paddle's cache, downloaded there if missing and ``download``.

    Raises:
        UsageError: no weights are published for ``model``.
        HapiRunnerError: they are not cached (or damaged) and cannot be
            downloaded; the line names the file to put where.
    """
    from paddle.utils import download as paddle_download

    url, md5 = imagenet_source(model)
    path = os.path.join(paddle_download.WEIGHTS_HOME, os.path.basename(url))
    if os.path.isfile(path) and md5_of(path) == md5:
        return path
    where = (f"put {os.path.basename(url)} (from {url}, md5 {md5}) at {path}, or pass --pretrained PATH")
    if os.path.isfile(path):
        where = f"{path} is damaged (md5 {md5_of(path)}, not {md5}): delete it and run again online, or {where}"
    if not download:
        raise HapiRunnerError(f"ImageNet weights for {model} are not in Paddle's cache and --no-download is set; {where}.")
    try:
        return paddle_download.get_weights_path_from_url(url, md5)
    # What a failed download raises: no network (requests' ConnectionError is an OSError), a server
    # refusing (RuntimeError after Paddle's retries), or a checksum that never matches.
    except (OSError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise HapiRunnerError(f"ImageNet weights for {model} could not be downloaded ({type(exc).__name__}: {reason}); {where}.") from exc


def classifier_name(network) -> str:
    """The name of ``network``'s classifier sublayer (see the module's docstring for the rule)."""
    import paddle

    named = getattr(network, "classifier_layer", None)
    children = dict(network.named_children())
    if named is not None:
        layers = dict(network.named_sublayers())
        if named not in layers:
            raise UsageError(f"{type(network).__name__}.classifier_layer is '{named}', which is no sublayer of it; "
                             f"name one of: {', '.join(list(children)[:12])}.")
        return named
    last = None
    for name, child in children.items():
        if isinstance(child, paddle.nn.Linear) or any(isinstance(s, paddle.nn.Linear) for s in child.sublayers()):
            last = name
    if last is None:
        raise UsageError(f"{type(network).__name__} has no paddle.nn.Linear layer to take for its classifier; "
                         f"set a classifier_layer attribute naming the sublayer to train.")
    return last


def head_reset_reason(weights: str, class_names: Optional[Sequence[str]]) -> Optional[str]:
    """Why the classifier in ``weights`` belongs to other classes than ``class_names``, or None when it may.

    Known only when ``weights`` is a run's checkpoint (``RUN/checkpoints/epoch_N/model.pdparams``) whose
    ``state.json`` names its classes (a folder run's do), and when this run's classes are known.
    """
    import json

    from ..runfolder.fingerprint import class_names_text
    from ..runfolder.layout import STATE_FILE

    state = os.path.join(os.path.dirname(os.path.abspath(weights)), STATE_FILE)
    if class_names is None or not os.path.isfile(state):
        return None
    try:
        with open(state, encoding="utf-8") as fh:
            theirs = json.load(fh).get("fingerprint", {}).get("class_names")
    except (OSError, ValueError, AttributeError):
        return None
    ours = class_names_text(class_names)
    if theirs is None or theirs == ours:
        return None
    return f"the weights' run had the classes {_shorten(theirs)}, this run has {_shorten(ours)}"


def _shorten(text: str, limit: int = 60) -> str:
    """``text`` (``'a', 'b', ...``) cut after the last whole name within ``limit`` characters, with the count."""
    if len(text) <= limit:
        return text
    between = "', '"  # what class_names_text puts between two names
    cut = text.rfind(between, 0, limit)
    head = text[:cut + 1] if cut > 0 else text[:limit]
    return f"{head}, ... ({text.count(between) + 1} in all)"


def split_parameters(network) -> Tuple[str, List, List]:
    """``(classifier name, its parameters, every other parameter)``."""
    name = classifier_name(network)
    head = dict(network.named_sublayers())[name].parameters()
    ids = {id(p) for p in head}
    return name, head, [p for p in network.parameters() if id(p) not in ids]


def apply_finetuning(network, freeze_backbone: bool, backbone_lr_mult: float) -> Dict[str, object]:
    """Freezes the backbone or scales its learning rate; returns what was done, for the run's first lines.

    Returns:
        ``{"classifier": name, "trainable": [parameters to optimise], "frozen": count, "lr_mult": F}``.
    """
    name, head, backbone = split_parameters(network)
    if freeze_backbone:
        for param in backbone:
            param.stop_gradient = True
        keep_batch_norm_statistics(layer for key, layer in network.named_sublayers()
                                   if key != name and not key.startswith(name + "."))
    elif backbone_lr_mult != 1.0:
        for param in backbone:
            param.optimize_attr["learning_rate"] = float(backbone_lr_mult)
    trainable = [p for p in network.parameters() if not p.stop_gradient]
    return {"classifier": name, "trainable": trainable, "frozen": len(backbone) if freeze_backbone else 0,
            "lr_mult": None if freeze_backbone else float(backbone_lr_mult)}


def describe_finetuning(report: Dict[str, object]) -> str:
    """The line a run prints about :func:`apply_finetuning`'s ``report``."""
    if report["frozen"]:
        return f"training the classifier '{report['classifier']}' only ({report['frozen']} backbone tensors frozen)"
    return f"the backbone trains at {report['lr_mult']:g} x the learning rate, the classifier '{report['classifier']}' at 1 x"
