"""deploy/inference.py and deploy/layout.py: the sidecar, the graph files of either Paddle, and a graph loaded without a sidecar.

The export round trip with a sidecar (logits equal, padding, shape refusals) is in test_export.py; these tests add the rest.
"""

import json

import numpy as np
import paddle
import pytest

from hapi_runner.deploy.export import export_model
from hapi_runner.deploy.inference import InferenceModel
from hapi_runner.deploy.layout import SIDECAR, build_sidecar, find_model_files, graph_format, load_sidecar
from hapi_runner.errors import HapiRunnerError, UsageError

pytestmark = pytest.mark.smoke

SHAPE = [2, 4, 4]


def tiny_net():
    paddle.seed(3)
    return paddle.nn.Sequential(paddle.nn.Conv2D(2, 3, 3, padding=1), paddle.nn.ReLU(), paddle.nn.Flatten(),
                                paddle.nn.Linear(48, 5))


def dygraph(net, batch):
    net.eval()
    with paddle.no_grad():
        return net(paddle.to_tensor(batch)).numpy()


@pytest.fixture(scope="module")
def bare_graph(tmp_path_factory):
    """A graph saved by paddle.jit.save under a prefix, with no sidecar beside it, and its network."""
    net = tiny_net()
    net.eval()
    prefix = str(tmp_path_factory.mktemp("bare") / "model")
    paddle.jit.save(net, prefix, input_spec=[paddle.static.InputSpec([None, *SHAPE], "float32")])
    return prefix, net


def test_sidecar_round_trip(tmp_path):
    sidecar = build_sidecar((0.5, 0.25), np.array([0.2, 0.4]), np.array([2, 6, 6]), class_names=("a", "b"),
                            model="m", dataset="d", temperature=1.5)
    (tmp_path / SIDECAR).write_text(json.dumps(sidecar))  # plain Python values only, or json.dumps fails
    assert load_sidecar(str(tmp_path)) == {"model": "m", "dataset": "d", "channels": 2, "mean": [0.5, 0.25],
                                           "std": [0.2, 0.4], "scale": "0-1", "pad_to": 6, "class_names": ["a", "b"],
                                           "temperature": 1.5}


def test_a_damaged_sidecar_is_one_line(tmp_path):
    (tmp_path / SIDECAR).write_text('{"mean": [0.5')
    with pytest.raises(HapiRunnerError, match=r"^cannot read .*hapi_runner\.json: .*; export the model again\.$"):
        load_sidecar(str(tmp_path))


@pytest.mark.parametrize("name, fmt", [("m/model.json", "pir"), ("model.pdmodel", "pdmodel")])
def test_graph_format(name, fmt):
    assert graph_format(name) == fmt


def test_graph_format_refuses_other_files():
    with pytest.raises(UsageError, match=r"^'model\.onnx' is not a Paddle graph file; expected a name ending in \.json or \.pdmodel"):
        graph_format("model.onnx")


@pytest.mark.parametrize("given", ["", "model", "model.pdmodel", "model.pdiparams"])
def test_find_model_files_on_paddle_2_names(tmp_path, given):
    for name in ("model.pdmodel", "model.pdiparams"):
        (tmp_path / name).write_bytes(b"")
    found = find_model_files(str(tmp_path / given) if given else str(tmp_path))
    assert found == (str(tmp_path / "model.pdmodel"), str(tmp_path / "model.pdiparams"))


def test_a_graph_without_sidecar_predicts_the_networks_logits(bare_graph):
    prefix, net = bare_graph
    engine = InferenceModel(prefix, threads=1, use_mkldnn=False)
    assert engine.sidecar is None and engine.class_names is None
    assert engine.file_format == graph_format(engine.model_file)
    assert engine.engine == "paddle.inference cpu 1 thread"
    batch = np.random.default_rng(0).standard_normal((7, *SHAPE)).astype("float32")
    np.testing.assert_allclose(engine.predict(batch, batch_size=3), dygraph(net, batch), rtol=1e-4, atol=1e-5)
    with pytest.raises(HapiRunnerError, match=r"has no hapi_runner\.json, so its preprocessing is unknown"):
        engine.preprocess(np.zeros((1, *SHAPE), np.uint8))


@pytest.mark.parametrize("batch, shown", [(np.zeros(SHAPE, np.float32), r"\[2, 4, 4\]"),
                                          (np.zeros((0, *SHAPE), np.float32), r"\[0, 2, 4, 4\]")])
def test_predict_refuses_what_is_not_a_batch(bare_graph, batch, shown):
    with pytest.raises(UsageError, match=rf"^predict takes a batch shaped \[N, C, H, W\] with N >= 1, got shape {shown}\.$"):
        InferenceModel(bare_graph[0], threads=1).predict(batch)


def test_preprocess_refuses_images_it_cannot_pad(tmp_path):
    folder = tmp_path / "inference"
    export_model(tiny_net(), str(folder), SHAPE, build_sidecar([0.5, 0.5], [0.25, 0.25], SHAPE, class_names=list("vwxyz")))
    engine = InferenceModel(str(folder), threads=1)
    assert engine.input_shape == SHAPE and engine.class_names == list("vwxyz")
    for images in (np.zeros((1, 2, 5, 5), np.uint8), np.zeros((1, 3, 4, 4), np.uint8)):
        with pytest.raises(UsageError, match=r"^preprocess takes images shaped \[N, 2, h, w\] with h, w <= 4"):
            engine.preprocess(images)
    out = engine.preprocess(np.full((1, 2, 2, 2), 255, np.uint8))  # padded around the centre to 4x4
    expected = np.full((1, 2, 4, 4), -2.0, np.float32)
    expected[:, :, 1:3, 1:3] = 2.0
    np.testing.assert_allclose(out, expected)
