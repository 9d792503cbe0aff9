"""LeNet-5 as LeCun et al. (1998) drew it: 32x32 inputs, two 5x5 convolutions, three fully connected layers.

Train it with hapi_runner (MNIST-family images are 28x28, so they are resized to 32)::

    hapi-runner train --model examples/lenet5.py:LeNet5 --image-size 32 --epochs 1
"""

import paddle
import paddle.nn as nn


class LeNet5(nn.Layer):
    """``in_channels`` and ``num_classes`` are filled in from the dataset."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2D(2, 2),
            nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2, 2),
        )
        self.fc = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                nn.Linear(84, num_classes))

    def forward(self, x):
        return self.fc(paddle.flatten(self.features(x), 1))
