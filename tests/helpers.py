"""Tiny in-memory datasets and models shared by the callback tests."""

import csv
import json
import os

import numpy as np
import paddle


class ArrayDataset(paddle.io.Dataset):
    """Samples ``(x[i], y[i])`` from two arrays."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __len__(self):
        return len(self.x)


def vectors(n=64, seed=0, features=16, classes=4):
    """Random float vectors with random labels ``[n, 1]``: enough to drive a fit."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    y = rng.integers(0, classes, (n, 1)).astype("int64")
    return ArrayDataset(x, y)


def points(n=20, seed=0):
    """Three features and two classes: small enough to check a step by hand."""
    return vectors(n, seed=seed, features=3, classes=2)


class ImageSet(paddle.io.Dataset):
    """Random images whose brightness depends on the label, so a tiny model learns something."""

    def __init__(self, n, shape=(1, 28, 28), seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 10, n).astype("int64")
        self.images = (rng.standard_normal((n, *shape)) * 0.5 + self.labels[:, None, None, None] * 0.2).astype("float32")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i:i + 1]


def lenet_model(seed=0, lr=0.01):
    """paddle.vision LeNet in a prepared paddle.Model (Momentum, cross-entropy, top-1/top-5)."""
    paddle.seed(seed)
    network = paddle.vision.models.LeNet()
    model = paddle.Model(network, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"),
                         paddle.static.InputSpec([None, 1], "int64", "label"))
    model.prepare(paddle.optimizer.Momentum(lr, parameters=network.parameters()), paddle.nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy(topk=(1, 5)))
    return model


def read_rows(run):
    """metrics.csv of a run folder, one dict per epoch."""
    with open(os.path.join(run, "metrics.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def linear_model(lr=0.1, optimizer="sgd"):
    """A prepared paddle.Model on 16-feature vectors (see :func:`vectors`), small enough to train in milliseconds."""
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(16, 4))
    model = paddle.Model(net, paddle.static.InputSpec([None, 16], "float32", "x"),
                         paddle.static.InputSpec([None, 1], "int64", "y"))
    opt_class = {"sgd": paddle.optimizer.SGD, "momentum": paddle.optimizer.Momentum}[optimizer]
    model.prepare(opt_class(learning_rate=lr, parameters=net.parameters()), paddle.nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy(topk=(1, 2)))
    return model
