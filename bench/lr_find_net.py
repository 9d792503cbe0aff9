"""A small user network for bench/lr_find.py: two conv blocks and a linear classifier (``--model bench/lr_find_net.py:SmallCNN``)."""

import paddle.nn as nn


class SmallCNN(nn.Layer):
    def __init__(self, in_channels=1, num_classes=10, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(in_channels, width, 3, padding=1), nn.BatchNorm2D(width), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(width, 2 * width, 3, padding=1), nn.BatchNorm2D(2 * width), nn.ReLU(), nn.AdaptiveAvgPool2D(1),
            nn.Flatten())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))
