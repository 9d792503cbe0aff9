"""Layer table, parameter count and multiply-adds of a model as adapted to a dataset.

``paddle.summary`` prints the layer table. ``paddle.flops`` cannot be used:
in Paddle 3.3.1 with numpy >= 2.4 it raises TypeError when it reads its
one-element parameter counters back (``int()`` of a 1-d array). The counter
here hooks the same layers with the same rules, so its totals equal
``paddle.flops`` where that works (convolutions count a multiply-add per
kernel element plus one for the bias; batch norm 2 per element in eval mode;
linear layers in x out per sample; average pools their window plus one;
activations and max-pools zero).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Sequence

import numpy as np


def count_macs(network, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on a ``[1, *input_shape]`` input (``paddle.flops`` rules)."""
    import paddle
    import paddle.nn as nn

    total = [0]

    def hook(layer, inputs, output):
        x = inputs[0]
        out_elems = int(np.prod(output.shape))
        if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D)):
            per_output = int(np.prod(layer.weight.shape[1:])) + (1 if layer.bias is not None else 0)
            total[0] += out_elems * per_output
        elif isinstance(layer, nn.Linear):
            total[0] += out_elems * int(layer.weight.shape[0])
        elif isinstance(layer, (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm)):
            total[0] += 2 * int(np.prod(x.shape))
        elif isinstance(layer, (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)):
            total[0] += out_elems
        elif isinstance(layer, (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)):
            window = int(np.prod(np.array(x.shape[2:]) // np.array(output.shape[2:])))
            total[0] += out_elems * (window + 1)

    handles = [layer.register_forward_post_hook(hook) for layer in network.sublayers() if not layer.sublayers()]
    was_training = network.training
    network.eval()
    try:
        with paddle.no_grad():
            network(paddle.zeros([1, *input_shape], dtype="float32"))
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            network.train()
    return total[0]


def count_params(network) -> Dict[str, int]:
    total = sum(int(np.prod(p.shape)) for p in network.parameters())
    trainable = sum(int(np.prod(p.shape)) for p in network.parameters() if not p.stop_gradient)
    return {"total_params": total, "trainable_params": trainable}


def summarize(config, print_table: bool = True) -> Dict[str, object]:
    """Builds the model ``config`` describes and reports its size.

    Args:
        config: a TrainConfig (model, dataset, stem, synthetic_like).
        print_table: print ``paddle.summary``'s layer table. Defaults to True.

    Returns:
        ``{"model", "dataset", "input_shape", "total_params", "trainable_params", "macs"}``.
    """
    import paddle

    from ..datasets import spec_for
    from .build import build_network, network_input_size

    spec = spec_for(config.dataset, config.synthetic_like)
    if spec.format == "folder":
        from ..datasets.folder import folder_class_names

        spec = replace(spec, num_classes=len(folder_class_names(config)), channels=config.channels or spec.channels)
    size = network_input_size(config, spec.size)
    network = build_network(config, spec.num_classes, spec.channels, size)
    shape = [spec.channels, size, size]
    if print_table:
        paddle.summary(network, (1, *shape))
    report = {"model": config.model, "dataset": config.dataset, "input_shape": shape}
    report.update(count_params(network))
    report["macs"] = count_macs(network, shape)
    return report
