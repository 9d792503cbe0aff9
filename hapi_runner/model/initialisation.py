"""How a network from scratch starts: residual blocks as the identity, and the convolutions' initial scale.

Two changes a network built here can take before training (Goyal et al. 2017,
"Accurate, Large Minibatch SGD"; He et al. 2019, "Bag of Tricks"; timm's
ResNet ``zero_init_last`` and ``init_weights``):

* **zero-initialised residual branches**: the scale (gamma) of the last
  BatchNorm of every residual block starts at 0, so each block starts as
  the identity (its shortcut) and the network trains first as a shallow one.
  Recognised blocks: paddle.vision's ``BasicBlock`` (``bn2``) and
  ``BottleneckBlock`` (``bn3``), and a block of the user's own that follows
  their convention: a layer with a ``downsample`` or ``shortcut`` attribute
  (None or a layer) and BatchNorm layers of its own, whose last-defined
  BatchNorm (outside the shortcut) ends the residual branch.
* **Kaiming-normal fan-out convolutions** (networks with BatchNorm only, ``conv_init="kaiming-fan-out"``; off by
  default, measured neutral in docs/accuracy.md): every ``Conv2D`` weight drawn from
  N(0, 2 / (out_channels x kernel area)), as torchvision's and timm's
  ResNets do; Paddle's own default is the fan-in variant.

Both act on the network in place and return what they changed, for the one
line the run prints.
"""

from __future__ import annotations

import math
from typing import Iterator, List, Tuple

CONV_INITS = ("paddle", "kaiming-fan-out")
# Names of the attribute that holds a residual block's shortcut, in paddle.vision, torchvision and timm style code.
SHORTCUT_NAMES = ("downsample", "shortcut", "short", "skip")


def _batch_norm_types() -> Tuple[type, ...]:
    import paddle.nn as nn

    return (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)


def has_batch_norm(network) -> bool:
    """True when ``network`` holds a BatchNorm layer: the networks these changes were measured on and apply to."""
    return any(isinstance(layer, _batch_norm_types()) for layer in network.sublayers(include_self=True))


def _last_norm(block) -> object:
    """The residual branch's closing BatchNorm of ``block``, or None when ``block`` is not a recognised residual block."""
    from paddle.vision.models.resnet import BasicBlock, BottleneckBlock

    if isinstance(block, BasicBlock):
        return block.bn2
    if isinstance(block, BottleneckBlock):
        return block.bn3
    if not any(hasattr(block, name) for name in SHORTCUT_NAMES):
        return None
    shortcut_ids = {id(layer) for name in SHORTCUT_NAMES if getattr(block, name, None) is not None
                    for layer in getattr(block, name).sublayers(include_self=True)}
    norms = [layer for layer in block.sublayers() if isinstance(layer, _batch_norm_types())
             and id(layer) not in shortcut_ids and getattr(layer, "weight", None) is not None]
    return norms[-1] if norms else None


def residual_blocks(network) -> Iterator[Tuple[str, object]]:
    """``(block name, its closing BatchNorm)`` for every recognised residual block of ``network``, outermost first.

    A recognised block's own sublayers are not searched again, so a block
    nested in another counts once.
    """
    inside: set = set()
    for name, layer in network.named_sublayers(include_self=True):
        if id(layer) in inside:
            continue
        norm = _last_norm(layer)
        if norm is not None:
            inside.update(id(sub) for sub in layer.sublayers())
            yield name or type(layer).__name__, norm


def zero_init_residual(network) -> List[str]:
    """Sets the scale of the last BatchNorm in every residual block of ``network`` to 0.

    Returns:
        The names of the blocks changed (empty when the network has none).
    """
    import paddle

    changed = []
    for name, norm in residual_blocks(network):
        norm.weight.set_value(paddle.zeros_like(norm.weight))
        changed.append(name)
    return changed


def kaiming_fan_out_convs(network) -> int:
    """Draws every ``Conv2D`` weight of ``network`` from N(0, 2 / fan_out), biases to 0; returns how many.

    fan_out is out_channels x kernel height x kernel width, read from the
    weight's shape as PyTorch's ``kaiming_normal_(mode="fan_out")`` does
    (He et al. 2015), grouped convolutions included.
    """
    import paddle
    import paddle.nn as nn

    count = 0
    for layer in network.sublayers(include_self=True):
        if not isinstance(layer, nn.Conv2D):
            continue
        shape = layer.weight.shape  # [out, in / groups, kh, kw]
        fan_out = shape[0] * shape[2] * shape[3]
        paddle.nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out))(layer.weight)
        if layer.bias is not None:
            layer.bias.set_value(paddle.zeros_like(layer.bias))
        count += 1
    return count


def initialise(network, config) -> str:
    """Applies ``config``'s ``zero_init_residual`` and ``conv_init`` to a network trained from scratch.

    Nothing is done with ``config.pretrained`` set (the weights loaded next
    decide where training starts), nor to a network without BatchNorm (LeNet):
    both practices come from, and were measured on, batch-normalised networks,
    and LeNet's recipes were tuned with Paddle's initialisation.

    Returns:
        One line saying what was changed, or "" when nothing was.
    """
    if config.pretrained or not has_batch_norm(network):
        return ""
    done = []
    if config.conv_init == "kaiming-fan-out":
        count = kaiming_fan_out_convs(network)
        if count:
            done.append(f"Kaiming-normal (fan-out) weights for {count} convolution{'s' if count > 1 else ''}")
    if config.zero_init_residual:
        blocks = zero_init_residual(network)
        if blocks:
            done.append(f"zero-initialised the last BatchNorm scale of {len(blocks)} residual block{'s' if len(blocks) > 1 else ''}")
    return "initialisation: " + "; ".join(done) if done else ""
