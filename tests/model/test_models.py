"""The model registry and its adaptation to channels, classes and input size."""

import numpy as np
import paddle
import pytest

from hapi_runner import HapiRunnerError, UsageError
from hapi_runner.model.builtin import MODELS, build_model, describe_pretrained, input_size, load_pretrained

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run


@pytest.mark.parametrize("name", ["lenet", "vgg11", "resnet18", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121"])
@pytest.mark.parametrize("channels, size, classes", [(1, 28, 10), (3, 32, 100)])
def test_every_family_maps_each_dataset_shape_to_logits(name, channels, size, classes):
    side = input_size(name, size)
    net = build_model(name, classes, channels, side)
    net.eval()
    out = net(paddle.zeros([2, channels, side, side]))
    assert out.shape == [2, classes]


def test_models_that_cannot_shrink_28_pixels_get_32():
    assert input_size("vgg16", 28) == 32 and input_size("densenet121", 28) == 32
    assert input_size("resnet50", 28) == 28 and input_size("lenet", 28) == 28
    with pytest.raises(UsageError, match="at least 32x32"):
        build_model("vgg16", 10, 1, 28)


def test_grey_input_gets_a_one_channel_stem():
    net = build_model("resnet50", 10, channels=1, size=28)
    assert net.conv1.weight.shape == [64, 1, 7, 7]


def test_cifar_stem_is_3x3_stride_1_without_maxpool():
    net = build_model("resnet18", 10, 3, 32, stem="cifar")
    assert net.conv1.weight.shape == [64, 3, 3, 3]
    assert isinstance(net.maxpool, paddle.nn.Identity)
    with pytest.raises(UsageError, match="ResNets only"):
        build_model("vgg11", 10, 3, 32, stem="cifar")


def test_stock_lenet_is_paddle_vision_lenet():
    net = build_model("lenet", 10, 1, 28)
    assert sum(int(np.prod(p.shape)) for p in net.parameters()) == 61_610


def test_pretrained_adapts_the_stem_and_skips_another_classifier(tmp_path, caplog, capsys):
    source = build_model("resnet18", 1000, 3, 32)
    path = str(tmp_path / "r18.pdparams")
    paddle.save(source.state_dict(), path)
    target = build_model("resnet18", 10, 1, 28)
    report = load_pretrained(target, path)
    assert report["adapted"] == ["conv1.weight"] and report["skipped"] == ["fc.weight", "fc.bias"] and report["missing"] == []
    assert len(report["loaded"]) == len(target.state_dict()) - 3
    assert "skipped fc.weight" in caplog.text
    assert capsys.readouterr().out.splitlines() == [
        f"hapi_runner: pretrained weights from {path}: {len(report['loaded'])} tensors loaded, "
        "1 adapted (conv1.weight 3->1 channels), 2 skipped (fc.weight [512, 1000]->[512, 10], fc.bias [1000]->[10])"]
    summed = source.conv1.weight.numpy().sum(axis=1, keepdims=True)
    np.testing.assert_allclose(target.conv1.weight.numpy(), summed, rtol=1e-5)
    np.testing.assert_array_equal(target.layer1[0].conv1.weight.numpy(), source.layer1[0].conv1.weight.numpy())


def test_pretrained_errors(tmp_path):
    net = build_model("lenet", 10, 1, 28)
    with pytest.raises(UsageError, match="do not exist"):
        load_pretrained(net, str(tmp_path / "none.pdparams"))
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(HapiRunnerError, match="cannot be read") as caught:
        load_pretrained(net, str(bad))
    cause = caught.value.__cause__
    assert cause is not None and f"cannot be read ({type(cause).__name__}: " in str(caught.value)
    assert " ".join(str(cause).split()) in str(caught.value)


def test_describe_pretrained_lists_a_few_names_and_what_the_file_lacks():
    report = {"loaded": ["a"] * 7, "adapted": [], "skipped": [f"s{i}" for i in range(6)], "missing": ["m.weight"],
              "shapes": {f"s{i}": [[2], [3]] for i in range(6)}}
    assert describe_pretrained("w.pdparams", report, listed=2) == (
        "pretrained weights from w.pdparams: 7 tensors loaded, 0 adapted, "
        "6 skipped (s0 [2]->[3], s1 [2]->[3], 4 more), 1 not in the file (m.weight)")


def test_registry_has_the_card_models():
    for name in ["lenet", *[f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")],
                 *[f"resnet{d}" for d in (18, 34, 50, 101, 152)], "mobilenet_v1", "mobilenet_v2"]:
        assert name in MODELS


def test_fresh_sublayers_keep_their_initialisation_and_the_rest_loads(tmp_path, capsys):
    source = build_model("resnet18", 10, 1, 28)
    path = str(tmp_path / "r18.pdparams")
    paddle.save(source.state_dict(), path)
    target = build_model("resnet18", 10, 1, 28)
    fresh_fc = target.fc.weight.numpy().copy()
    report = load_pretrained(target, path, fresh=["fc"])
    assert report["fresh"] == ["fc.weight", "fc.bias"] and report["missing"] == [] and report["skipped"] == []
    assert len(report["loaded"]) == len(target.state_dict()) - 2
    np.testing.assert_array_equal(target.fc.weight.numpy(), fresh_fc)
    assert not np.allclose(target.fc.weight.numpy(), source.fc.weight.numpy())
    np.testing.assert_array_equal(target.layer4[1].conv2.weight.numpy(), source.layer4[1].conv2.weight.numpy())
    assert "2 left at their fresh initialisation (fc.weight, fc.bias)" in capsys.readouterr().out
