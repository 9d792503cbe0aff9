"""model/build.py: the side a network is fed, the network a config names, and the forward check's one-line refusals."""

import paddle
import pytest

from hapi_runner.config.train_config import TrainConfig
from hapi_runner.errors import UsageError
from hapi_runner.model.build import build_network, check_forward, network_input_size
from hapi_runner.model.names import python_object_label

pytestmark = pytest.mark.smoke

TINY = '''
import paddle


class Tiny(paddle.nn.Layer):
    def __init__(self, in_channels, num_classes, width=4):
        super().__init__()
        self.conv = paddle.nn.Conv2D(in_channels, width, 3, padding=1)
        self.head = paddle.nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(paddle.mean(self.conv(x), axis=[2, 3]))
'''


@pytest.mark.parametrize("model, image_size, dataset_size, expected", [
    ("lenet", None, 28, 28),
    ("vgg11", None, 28, 32),  # padded up to the model's minimum
    ("vgg11", 64, 28, 64),
    ("nets.py:Tiny", None, 20, 20),  # a user's network takes the data as it is
    ("nets.py:Tiny", 8, 20, 8),
])
def test_network_input_size(model, image_size, dataset_size, expected):
    assert network_input_size(TrainConfig(model=model, image_size=image_size), dataset_size) == expected


def test_network_input_size_refuses_below_a_models_minimum():
    with pytest.raises(UsageError, match=r"^--image-size 16 is below the 32x32 inputs vgg11 takes; pass --image-size 32"):
        network_input_size(TrainConfig(model="vgg11", image_size=16), 28)


def test_build_network_builtin_gives_class_logits():
    paddle.seed(0)
    net = build_network(TrainConfig(model="lenet"), num_classes=7, channels=1, size=28)
    check_forward(net, (1, 28, 28), 7, "lenet")  # passes: one logit per class
    assert list(net(paddle.zeros([3, 1, 28, 28])).shape) == [3, 7]


def test_build_network_from_a_users_file(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(TINY)
    net = build_network(TrainConfig(model=f"{path}:Tiny", model_kwargs={"width": 6}), num_classes=3, channels=2, size=9)
    assert list(net.conv.weight.shape) == [6, 2, 3, 3]
    assert list(net(paddle.zeros([4, 2, 9, 9])).shape) == [4, 3]


def test_build_network_refuses_a_network_built_in_python():
    label = python_object_label(paddle.nn.Linear(2, 2))
    with pytest.raises(UsageError, match=r"built in Python \(<python object: Linear>\).*pass it: Runner\(config, network=net\)"):
        build_network(TrainConfig(model=label), 10, 1, 28)


def test_check_forward_refuses_wrong_output_and_restores_training_mode():
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(16, 4))
    net.train()
    with pytest.raises(UsageError, match=r"^net maps a \[2, 1, 4, 4\] input to \[2, 4\], not \[2, 10\] \(batch, classes\); "
                                         r"it gives 4 class scores for data of 10 classes: give its last layer num_classes outputs"):
        check_forward(net, (1, 4, 4), 10, "net")
    assert net.training


def test_check_forward_names_a_failing_forward_and_the_lenet5_fix():
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(400, 10))  # written for 16x5x5 features
    with pytest.raises(UsageError, match=r"^net fails on a \[2, 1, 28, 28\] input \(\w+: .*\); if it was written for 32x32 "
                                         r"inputs \(LeNet-5\), pass --image-size 32\.$") as info:
        check_forward(net, (1, 28, 28), 10, "net")
    assert "\n" not in str(info.value) and "/paddle/" not in str(info.value)


def test_check_forward_refuses_a_non_tensor_output():
    class Pair(paddle.nn.Layer):
        def forward(self, x):
            return x, x

    with pytest.raises(UsageError, match=r"maps a \[2, 1, 5, 5\] input to a tuple, not \[2, 3\]"):
        check_forward(Pair(), (1, 5, 5), 3, "pair")
