"""runfolder/fingerprint.py: what a checkpoint records about its network."""

import paddle
import pytest

from hapi_runner.config.train_config import TrainConfig
from hapi_runner.runfolder.fingerprint import run_fingerprint

pytestmark = pytest.mark.smoke


def test_fingerprint_of_a_builtin_model_without_network():
    config = TrainConfig(model="lenet", dataset="mnist", ema=0.99, accumulate_grad_batches=3)
    found = run_fingerprint(config, (1, 28, 28), 10)
    assert found == {"model": "lenet", "dataset": "mnist", "input_shape": [1, 28, 28], "num_classes": 10,
                      "config": config.fingerprint(), "ema": 0.99, "accumulate_grad_batches": 3}


def test_fingerprint_records_parameter_shapes_class_names_and_user_kwargs():
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(12, 5))
    config = TrainConfig(model="nets.py:Tiny", model_kwargs={"width": 7})
    found = run_fingerprint(config, [3, 2, 2], 5, network=net, class_names=["cat", "dog"])
    assert found["parameters"] == {"1.weight": [12, 5], "1.bias": [5]}
    assert found["model_kwargs"] == {"width": 7}
    assert found["class_names"] == "'cat', 'dog'"
    assert found["ema"] == "off"


@pytest.mark.parametrize("change, differs", [
    (dict(model="resnet18"), True), (dict(stem="cifar"), True), (dict(dataset="cifar10"), True),
    (dict(lr=0.5), False), (dict(epochs=7), False),
])
def test_config_part_changes_only_with_the_network_shape(change, differs):
    base = TrainConfig(model="lenet", dataset="mnist")
    before = run_fingerprint(base, (1, 28, 28), 10)["config"]
    after = run_fingerprint(base.replace(**change), (1, 28, 28), 10)["config"]
    assert (before != after) is differs
