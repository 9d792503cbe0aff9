"""A ResNet written out by hand: bottleneck blocks (He et al., 2016), as many per stage as ``layers`` says.

``layers=[3, 4, 6, 3]`` is ResNet-50's depth. Small images (MNIST's 28x28,
CIFAR's 32x32) get a 3x3 stem without the max-pool, so the last stage still
sees a few pixels. Train it with hapi_runner::

    hapi-runner train --model examples/resnet.py:ResNet --model-kwargs layers=[3,4,6,3] --dataset mnist

or build it in Python and hand it over::

    from examples.resnet import ResNet
    network = ResNet([3, 4, 6, 3], class_dim=10)
"""

import paddle.nn as nn


class Bottleneck(nn.Layer):
    """1x1 down to ``width``, 3x3 at ``stride``, 1x1 up to ``4 * width``, plus the input (projected where shapes differ)."""

    expansion = 4

    def __init__(self, channels_in, width, stride=1):
        super().__init__()
        out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2D(channels_in, width, 1, bias_attr=False), nn.BatchNorm2D(width), nn.ReLU(),
            nn.Conv2D(width, width, 3, stride=stride, padding=1, bias_attr=False), nn.BatchNorm2D(width), nn.ReLU(),
            nn.Conv2D(width, out, 1, bias_attr=False), nn.BatchNorm2D(out),
        )
        self.shortcut = None
        if stride != 1 or channels_in != out:
            self.shortcut = nn.Sequential(nn.Conv2D(channels_in, out, 1, stride=stride, bias_attr=False), nn.BatchNorm2D(out))
        self.relu = nn.ReLU()

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.body(x) + identity)


class ResNet(nn.Layer):
    """Four stages of bottleneck blocks, widths 64, 128, 256, 512, each stage after the first halving the side.

    Args:
        layers: blocks per stage. Defaults to ResNet-50's ``[3, 4, 6, 3]``.
        class_dim: classes (filled in from the dataset). Defaults to 10.
        num_channels: input channels (filled in from the dataset). Defaults to 1.
        width: the first stage's width; 16 makes a small, fast network. Defaults to 64.
    """

    def __init__(self, layers=(3, 4, 6, 3), class_dim=10, num_channels=1, width=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(num_channels, width, 3, padding=1, bias_attr=False), nn.BatchNorm2D(width), nn.ReLU())
        blocks, channels = [], width
        for stage, count in enumerate(layers):
            stage_width = width * 2 ** stage
            for index in range(count):
                blocks.append(Bottleneck(channels, stage_width, stride=2 if stage and index == 0 else 1))
                channels = stage_width * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.head = nn.Linear(channels, class_dim)

    def forward(self, x):
        features = self.pool(self.blocks(self.stem(x)))
        return self.head(features.flatten(1))
