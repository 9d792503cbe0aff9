"""Which parameters weight decay reaches: not the BatchNorm scales and shifts, nor any bias.

timm's optimizer factory (``filter_bias_and_bn``) and PaddleClas
(``no_weight_decay_name``) leave one-dimensional parameters out of weight
decay: decaying a BatchNorm scale or a bias only shrinks what the next layer
undoes, and pulls a normalised network's effective learning rate around.

Paddle's parameter groups cannot carry this here: ``paddle.Model`` trains
through ``Optimizer.minimize``, which in dynamic mode reads the parameter list
as tensors and fails on groups. So an exempt parameter gets its own
``regularizer`` (``L2Decay(0)``), which Momentum, SGD and Adam put before the
optimizer's ``weight_decay`` (the per-parameter rule of ``paddle.ParamAttr``);
AdamW's decoupled decay is steered by its ``apply_decay_param_fun``.

It is asked for with ``--no-decay-norm-and-bias`` and applies to networks
with BatchNorm, where it was measured; a network without (LeNet) keeps
Paddle's decay of every parameter, with which its recipes were tuned. It is
off by default: with Paddle's initialisation it cost accuracy in the
first-epochs benchmark (docs/accuracy.md).
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple


def is_decay_exempt(parameter) -> bool:
    """True for a parameter weight decay should not reach: one with at most one dimension (norm scales and shifts, biases)."""
    return len(parameter.shape) <= 1


def split_for_decay(parameters: Sequence[Any]) -> Tuple[List[Any], List[Any]]:
    """``(decayed, exempt)``: the trainable ``parameters`` split by :func:`is_decay_exempt`, order kept.

    Parameters that are not trained (BatchNorm's running statistics, frozen
    layers) are in neither list.
    """
    decayed, exempt = [], []
    for parameter in parameters:
        if not parameter.stop_gradient:
            (exempt if is_decay_exempt(parameter) else decayed).append(parameter)
    return decayed, exempt


def decay_exempt(network, parameters: Sequence[Any], config) -> List[Any]:
    """The parameters of ``parameters`` that ``config``'s weight decay should leave alone (for ``build_optimizer``).

    None when ``config.weight_decay`` is 0, ``config.decay_norm_and_bias``
    is set, or ``network`` has no BatchNorm layer.
    """
    from ..model.initialisation import has_batch_norm

    if not config.weight_decay or config.decay_norm_and_bias or not has_batch_norm(network):
        return []
    return split_for_decay(parameters)[1]


def decay_note(exempt: Sequence[Any], config) -> str:
    """The line a run prints when ``--no-decay-norm-and-bias`` was asked for: what ``exempt`` left out, or why nothing.

    Empty when it was not asked for or there is no weight decay to leave out.
    """
    if config.decay_norm_and_bias or not config.weight_decay:
        return ""
    if exempt:
        return (f"weight decay: {len(exempt)} BatchNorm scales and shifts and biases left out "
                "(--no-decay-norm-and-bias)")
    return ("weight decay: --no-decay-norm-and-bias left nothing out (it applies to networks with BatchNorm); "
            "every parameter decays")


def exempt_from_decay(parameters: Sequence[Any]) -> set:
    """Gives each of ``parameters`` a zero L2 regularizer, which the optimizer's own decay yields to; returns their names."""
    from paddle.regularizer import L2Decay

    for parameter in parameters:
        parameter.regularizer = L2Decay(0.0)
    return {parameter.name for parameter in parameters}
