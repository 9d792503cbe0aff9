"""Source text of networks shaped like the ones people bring: written to files by the tests that load them."""

LENET5 = '''
import paddle
import paddle.nn as nn


class LeNet5(nn.Layer):
    """LeNet-5 as written for 32x32 inputs: the flatten is 16 * 5 * 5 wide."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2D(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2D(2, 2),
                                      nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2, 2))
        self.fc1 = nn.Linear(16 * 5 * 5, WIDTH)
        self.fc2 = nn.Linear(WIDTH, num_classes)

    def forward(self, x):
        x = paddle.flatten(self.features(x), 1)
        return self.fc2(nn.functional.relu(self.fc1(x)))
'''

RESNET = '''
import paddle
import paddle.nn as nn


class Bottleneck(nn.Layer):
    expansion = 2

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2D(inplanes, planes, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(planes)
        self.conv2 = nn.Conv2D(planes, planes, 3, stride=stride, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(planes)
        self.conv3 = nn.Conv2D(planes, out, 1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(out)
        self.short = None
        if stride != 1 or inplanes != out:
            self.short = nn.Sequential(nn.Conv2D(inplanes, out, 1, stride=stride, bias_attr=False), nn.BatchNorm2D(out))

    def forward(self, x):
        y = nn.functional.relu(self.bn1(self.conv1(x)))
        y = nn.functional.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return nn.functional.relu(y + (x if self.short is None else self.short(x)))


class ResNet(nn.Layer):
    """A bottleneck ResNet with a 1-channel stem, as hand-written for MNIST: ``layers`` blocks per stage."""

    def __init__(self, layers, class_dim=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(1, 4, 3, padding=1, bias_attr=False), nn.BatchNorm2D(4), nn.ReLU())
        blocks, inplanes = [], 4
        for i, count in enumerate(layers):
            for j in range(count):
                blocks.append(Bottleneck(inplanes, 4 * 2 ** i, stride=2 if j == 0 and i > 0 else 1))
                inplanes = 4 * 2 ** i * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.out = nn.Linear(inplanes, class_dim)

    def forward(self, x):
        return self.out(paddle.flatten(self.pool(self.blocks(self.stem(x))), 1))
'''

NO_ARGUMENTS = '''
import paddle
import paddle.nn as nn


class Tiny(nn.Layer):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2D(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2D(1), nn.Flatten())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.body(x))
'''

FACTORY = '''
import paddle.nn as nn


def make_net(num_classes, num_channels, width=4):
    return nn.Sequential(nn.Conv2D(num_channels, width, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2D(1), nn.Flatten(),
                         nn.Linear(width, num_classes))


def not_a_network(num_classes):
    return {"classes": num_classes}


class Helper:
    pass


INSTANCE = nn.Linear(2, 2)
'''

NOT_CONVERTIBLE = '''
import numpy as np
import paddle
import paddle.nn as nn


class HostRoundTrip(nn.Layer):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        scale = float(np.asarray(x.numpy()).std() + 1.0)  # a trip to numpy that no static graph can hold
        return self.fc(paddle.flatten(x, 1)) / scale
'''

IMPORT_ERROR = '''
import paddle.nn as nn

import no_such_module_here


class Net(nn.Layer):
    pass
'''


def write_net(folder, name, text, **replace):
    """Writes ``text`` (WIDTH etc. replaced) to ``folder/name`` and returns the path as a string."""
    for key, value in {"WIDTH": 16, **replace}.items():
        text = text.replace(key, str(value))
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)
