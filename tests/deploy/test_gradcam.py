"""Grad-CAM: on images whose class is decided by a blob in the left half only, the heat map's mass lies there."""

import numpy as np
import pytest

from hapi_runner.deploy.gradcam import (ExplanationWriter, dataset_cams, find_layer, grad_cam, heat_colours, overlay,
                                        unnormalise)
from hapi_runner.errors import UsageError

SIDE = 16


def blob_images(count, seed):
    """Grey [N, 1, 16, 16] images in 0-1: class 1 has a bright 3x3 blob in the left half, class 0 has none.

    Both classes have a bright line in the right half half of the time: a distractor that decides nothing.
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.15, (count, 1, SIDE, SIDE)).astype(np.float32)
    labels = rng.integers(0, 2, count)
    for image, label in zip(images, labels):
        if label == 1:
            row, col = rng.integers(2, SIDE - 5), rng.integers(1, SIDE // 2 - 4)
            image[0, row:row + 3, col:col + 3] = 1.0
        if rng.random() < 0.5:
            row, col = rng.integers(1, SIDE - 1), rng.integers(SIDE // 2 + 1, SIDE - 6)
            image[0, row, col:col + 5] = 1.0
    return images, labels.astype(np.int64)


def small_cnn():
    import paddle.nn as nn

    return nn.Sequential(nn.Conv2D(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Conv2D(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(8, 2))


@pytest.fixture(scope="module")
def trained():
    import paddle
    from paddle.io import TensorDataset

    paddle.seed(0)
    images, labels = blob_images(512, seed=0)
    network = small_cnn()
    model = paddle.Model(network)
    model.prepare(paddle.optimizer.Adam(learning_rate=0.01, parameters=network.parameters()), paddle.nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy())
    data = TensorDataset([paddle.to_tensor(images), paddle.to_tensor(labels[:, None])])
    model.fit(data, epochs=4, batch_size=32, verbose=0, shuffle=True)
    network.eval()
    test, test_labels = blob_images(64, seed=1)
    logits = network(paddle.to_tensor(test)).numpy()
    assert (logits.argmax(1) == test_labels).mean() > 0.9  # the network has learnt the rule it is tested on
    return network, test, test_labels


def test_the_heat_map_lies_on_the_deciding_half(trained):
    network, images, labels = trained
    blob = images[labels == 1]
    cams = grad_cam(network, blob, [1] * len(blob))
    assert cams.shape == (len(blob), SIDE, SIDE) and cams.min() >= 0.0
    left = cams[:, :, :SIDE // 2].sum(axis=(1, 2)) / np.maximum(cams.sum(axis=(1, 2)), 1e-12)
    assert np.median(left) > 0.7, left


def test_the_last_convolution_is_found_or_the_named_layer_used(trained):
    network = trained[0]
    assert find_layer(network)[0] == "3"
    assert find_layer(network, "0")[0] == "0"
    with pytest.raises(UsageError, match="no layer 'head'.*0, 3.*--cam-layer"):
        find_layer(network, "head")
    with pytest.raises(UsageError, match="layer '6' gives output of shape \\[2, 8\\]"):
        grad_cam(network, trained[1][:2], [0, 0], "6")


def test_the_writer_names_its_files_and_refuses_an_unknown_class(trained, tmp_path):
    network, images, labels = trained
    writer = ExplanationWriter(network, str(tmp_path / "cams"), [0.0], [1.0], ["plain", "blob"], explain_class="blob")
    answers = [{"class_id": 0}, {"class_id": 0}]
    writer(["a/x.png", "b/x.png"], images[:2], answers)
    assert [a["explanation"]["class_name"] for a in answers] == ["blob", "blob"]
    saved = np.load(tmp_path / "cams" / "x_2_gradcam.npy")
    assert saved.shape == (SIDE, SIDE) and saved.min() >= 0
    np.testing.assert_allclose(saved, grad_cam(network, images[1:2], [1])[0], rtol=1e-5, atol=1e-7)
    from PIL import Image

    with Image.open(tmp_path / "cams" / "x_gradcam.png") as picture:
        assert picture.size == (SIDE * 7, SIDE * 7) and picture.mode == "RGB"
    with pytest.raises(UsageError, match="'dog' is not a class of this model; its classes are: plain, blob"):
        ExplanationWriter(network, str(tmp_path / "c2"), [0.0], [1.0], ["plain", "blob"], explain_class="dog")


def test_colours_overlay_and_unnormalise():
    cam = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32)
    colours = heat_colours(cam)
    assert tuple(colours[0, 0]) == (0, 0, 127) and tuple(colours[1, 1]) == (127, 0, 0)  # blue nothing, red most
    grey = np.full((4, 4), 200, np.uint8)
    drawn = overlay(grey, cam)  # a 2x2 map resized onto a 4x4 image
    assert drawn.shape == (4, 4, 3) and drawn.dtype == np.uint8
    assert tuple(overlay(grey, cam, alpha=0.5)[0, 0]) == (200, 200, 200)  # no heat: the image as it was
    batch = (np.array([[[[0, 255]]]], np.float32) / 255.0 - 0.5) / 0.25
    assert unnormalise(batch, [0.5], [0.25]).tolist() == [[[[0], [255]]]]


def test_dataset_cams_use_the_datasets_transform(trained):
    class Data:
        images = (trained[1] * 255).astype(np.uint8)

        @staticmethod
        def transform(batch):
            return np.asarray(batch, np.float32) / 255.0

    cams = dataset_cams(trained[0], Data, batch_size=3)([0, 1, 2, 3], [1, 1, 0, 0])
    assert cams.shape == (4, SIDE, SIDE)
    np.testing.assert_allclose(cams[3], grad_cam(trained[0], Data.transform(Data.images[3:4]), [0])[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, layer", [("resnet18", "layer4.1.conv2"), ("mobilenet_v2", "features.18.0")])
def test_paddle_vision_networks_are_weighed_at_their_last_convolution(name, layer):
    import paddle
    import paddle.vision.models as models

    paddle.seed(0)
    network = getattr(models, name)(num_classes=3)
    network.eval()
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert find_layer(network)[0] == layer
    cams = grad_cam(network, batch, [0, 2])
    assert cams.shape == (2, 32, 32) and cams.min() >= 0.0 and np.isfinite(cams).all()
