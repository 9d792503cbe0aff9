"""Networks of the user's own (--model FILE.py:NAME, Runner(network=...)), --image-size, and fine-tuning."""

import hashlib
import json
import os

import numpy as np
import pytest

from hapi_runner import TrainConfig
from hapi_runner.cli.app import main
from hapi_runner.errors import HapiRunnerError, UsageError
from usernets import FACTORY, IMPORT_ERROR, LENET5, NO_ARGUMENTS, NOT_CONVERTIBLE, RESNET, write_net

QUICK = ["--threads", "1", "--epochs", "1", "--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64",
         "--batch-size", "32", "--verbose", "0", "--no-visualdl", "--no-report"]


def build(model, **kwargs):
    from hapi_runner.model.user import build_user_network

    return build_user_network(model, 10, 1, kwargs)


# -- the model setting ----------------------------------------------------------------

@pytest.mark.smoke
@pytest.mark.parametrize("model", ["nets/mynet.py:Net", "mynet.py:make_net", "pkg.nets:ResNet", "lenet"])
def test_config_accepts_the_model_forms(model):
    assert TrainConfig(model=model).model == model


@pytest.mark.parametrize("model, phrase", [
    ("mynet.py:", "'' after the colon is not a Python name"),
    ("mynet.py:1Net", "'1Net' after the colon is not a Python name"),
    ("my net/x:Net", "neither a .py file nor a dotted module name"),
    ("resnt", "model 'resnt' is not known"),
])
def test_config_refuses_a_misspelt_model(model, phrase):
    with pytest.raises(UsageError, match=phrase):
        TrainConfig(model=model)


@pytest.mark.smoke
def test_model_kwargs_are_yaml_scalars_from_the_flag_or_a_mapping():
    flags = TrainConfig(model="a.py:Net", model_kwargs=["layers=[3, 4, 6, 3]", "width=0.5", "name=abc", "bn=true"])
    assert flags.model_kwargs == {"layers": [3, 4, 6, 3], "width": 0.5, "name": "abc", "bn": True}
    assert TrainConfig(model="a.py:Net", model_kwargs={"width": 8}).model_kwargs == {"width": 8}


@pytest.mark.parametrize("kwargs, phrase", [
    (["width"], "'width' is not KEY=VALUE"),
    (["=3"], "'=3' is not KEY=VALUE"),
    ({"not a name": 1}, "'not a name' is not a Python argument name"),
    (3, "model_kwargs must be a mapping"),
])
def test_bad_model_kwargs_are_refused(kwargs, phrase):
    with pytest.raises(UsageError, match=phrase):
        TrainConfig(model="a.py:Net", model_kwargs=kwargs)


def test_model_kwargs_need_a_network_of_ones_own():
    with pytest.raises(UsageError, match="model_kwargs apply to a --model FILE.py:NAME"):
        TrainConfig(model="lenet", model_kwargs={"width": 8})


def test_run_folders_are_named_after_the_file_and_name():
    from hapi_runner.model.names import run_name

    assert run_name("nets/my net.py:LeNet5", "mnist") == "my net.LeNet5-mnist"
    assert run_name("pkg.nets:ResNet", "cifar10") == "pkg.nets.ResNet-cifar10"
    assert run_name("<python object: Net>", "mnist") == "Net-mnist"


# -- loading ------------------------------------------------------------------------

@pytest.mark.parametrize("text, name, kwargs", [
    (LENET5, "LeNet5", {}),
    (RESNET, "ResNet", {"layers": [1, 1]}),
    (NO_ARGUMENTS, "Tiny", {}),
    (FACTORY, "make_net", {"width": 6}),
], ids=["lenet5", "resnet", "no-arguments", "factory"])
def test_networks_are_built_with_the_counts_their_signature_names(tmp_path, text, name, kwargs):
    import paddle

    path = write_net(tmp_path, "net.py", text)
    network = build(f"{path}:{name}", **kwargs)
    assert isinstance(network, paddle.nn.Layer)
    size = 32 if name == "LeNet5" else 28
    assert network(paddle.zeros([2, 1, size, size])).shape == [2, 10]
    assert not (tmp_path / "__pycache__").exists()  # loading leaves nothing beside the user's file


def test_a_module_path_is_imported(tmp_path, monkeypatch):
    write_net(tmp_path / "mypkg", "__init__.py", "")
    write_net(tmp_path / "mypkg", "nets.py", FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build("mypkg.nets:make_net")[-1].weight.shape == [4, 10]


@pytest.mark.parametrize("text, spec, kwargs, phrase", [
    (None, "{tmp}/absent.py:Net", {}, "model file '{tmp}/absent.py' does not exist; pass --model FILE.py:NAME"),
    (FACTORY, "{path}:Net", {}, "'{path}' has no 'Net'; its Layer classes and functions: make_net, not_a_network."),
    (IMPORT_ERROR, "{path}:Net", {}, "fails to import: ModuleNotFoundError: No module named 'no_such_module_here' (at {path}:4)"),
    ("import paddle\ndef broken(:\n", "{path}:broken", {}, "fails to import: SyntaxError"),
    (FACTORY, "{path}:Helper", {}, "is a class that is not a paddle.nn.Layer"),
    (FACTORY, "{path}:INSTANCE", {}, "is a Linear, not a paddle.nn.Layer subclass or a function returning one"),
    (FACTORY, "{path}:not_a_network", {}, "returned a dict, not a paddle.nn.Layer"),
    (FACTORY, "{path}:make_net", {"depth": 3}, "takes no argument 'depth' (--model-kwargs); it takes: num_classes, num_channels, width."),
    (RESNET, "{path}:ResNet", {}, "missing 1 required positional argument: 'layers'"),
    (None, "no_such_package_anywhere.nets:Net", {}, "cannot be imported (no module named 'no_such_package_anywhere')"),
], ids=["missing-file", "missing-name", "import-error", "syntax-error", "not-a-layer-class", "an-instance",
        "factory-returns-a-dict", "unknown-kwarg", "missing-argument", "missing-module"])
def test_a_network_that_cannot_be_built_is_one_line(tmp_path, text, spec, kwargs, phrase):
    path = write_net(tmp_path, "net.py", text) if text is not None else str(tmp_path / "net.py")
    fill = {"tmp": str(tmp_path), "path": path}
    with pytest.raises(UsageError) as excinfo:
        build(spec.format(**fill), **kwargs)
    message = str(excinfo.value)
    assert phrase.format(**fill) in message
    assert "\n" not in message


# -- the forward pass before training -----------------------------------------------

def test_a_forward_that_fails_names_the_shapes_and_the_fix(tmp_path):
    from hapi_runner.model.build import check_forward

    network = build(write_net(tmp_path, "net.py", LENET5) + ":LeNet5")
    with pytest.raises(UsageError, match=r"fails on a \[2, 1, 28, 28\] input \(ValueError: .*pass --image-size 32"):
        check_forward(network, [1, 28, 28], 10, "net.py:LeNet5")
    check_forward(network, [1, 32, 32], 10, "net.py:LeNet5")


def test_an_output_of_another_shape_is_refused(tmp_path):
    from hapi_runner.model.build import check_forward

    network = build(write_net(tmp_path, "net.py", FACTORY) + ":make_net")
    with pytest.raises(UsageError, match=r"maps a \[2, 1, 28, 28\] input to \[2, 10\], not \[2, 7\] \(batch, classes\); "
                                         r"it gives 10 class scores for data of 7 classes: give its last layer num_classes"):
        check_forward(network, [1, 28, 28], 7, "net.py:make_net")


def test_a_built_in_model_on_too_small_images_is_told_the_image_size_that_works():
    from hapi_runner.model.builtin import build_model

    with pytest.raises(UsageError, match=r"resnet18 needs inputs of at least 28x28, got 8x8; pass --image-size 28 or more"):
        build_model("resnet18", 10, 3, 8)


# -- --image-size ----------------------------------------------------------------------

def test_resize_images_is_bilinear_and_keeps_flat_images_flat():
    from hapi_runner.datasets.resize import resize_images

    images = np.full((3, 1, 28, 28), 77, dtype=np.uint8)
    images[1] = np.arange(28, dtype=np.uint8)[None, None, :] * 9
    out = resize_images(images, 32)
    assert out.shape == (3, 1, 32, 32) and out.dtype == np.uint8
    assert (out[0] == 77).all()
    assert np.all(np.diff(out[1, 0, 5].astype(int)) >= 0)  # a ramp stays a ramp
    assert resize_images(images, 28) is images


def test_an_image_size_below_a_built_in_models_minimum_is_refused():
    from hapi_runner.model.build import network_input_size

    assert network_input_size(TrainConfig(model="vgg11", image_size=64), 28) == 64
    assert network_input_size(TrainConfig(model="vgg11"), 28) == 32
    assert network_input_size(TrainConfig(model="x.py:Net"), 28) == 28
    with pytest.raises(UsageError, match="--image-size 16 is below the 32x32 inputs vgg11 takes; pass --image-size 32 or more."):
        network_input_size(TrainConfig(model="vgg11", image_size=16), 28)


# -- fine-tuning -----------------------------------------------------------------------

@pytest.mark.parametrize("name, classifier", [("resnet18", "fc"), ("vgg11", "classifier"), ("mobilenet_v3_small", "classifier"),
                                              ("lenet", "fc"), ("shufflenet_v2_x1_0", "_fc")])
def test_the_classifier_of_each_family(name, classifier):
    from hapi_runner.model.finetune import classifier_name
    from hapi_runner.model.builtin import build_model

    assert classifier_name(build_model(name, 10, 1, 32)) == classifier


def test_the_classifier_of_a_user_network_is_the_last_linear_or_its_named_layer(tmp_path):
    from hapi_runner.model.finetune import classifier_name

    network = build(write_net(tmp_path, "net.py", LENET5) + ":LeNet5")
    assert classifier_name(network) == "fc2"
    network.classifier_layer = "fc1"
    assert classifier_name(network) == "fc1"
    network.classifier_layer = "nope"
    with pytest.raises(UsageError, match="classifier_layer is 'nope', which is no sublayer of it"):
        classifier_name(network)


def test_freeze_and_lr_mult_mark_the_backbone(tmp_path):
    from hapi_runner.model.finetune import apply_finetuning

    path = write_net(tmp_path, "net.py", LENET5) + ":LeNet5"
    frozen = build(path)
    report = apply_finetuning(frozen, True, 1.0)
    assert report["classifier"] == "fc2" and report["frozen"] == 6
    assert [p.name for p in report["trainable"]] == [p.name for p in frozen.fc2.parameters()]
    slow = build(path)
    apply_finetuning(slow, False, 0.1)
    assert {p.optimize_attr["learning_rate"] for p in slow.features.parameters()} == {0.1}
    assert {p.optimize_attr["learning_rate"] for p in slow.fc2.parameters()} == {1.0}


@pytest.fixture
def weights_home(tmp_path, monkeypatch):
    """Paddle's weights cache in tmp_path, holding nothing yet."""
    from paddle.utils import download

    home = tmp_path / "weights"
    home.mkdir()
    monkeypatch.setattr(download, "WEIGHTS_HOME", str(home))
    return home


def _cache_resnet18(home, monkeypatch):
    """ImageNet-shaped resnet18 weights where Paddle caches them, and their md5 as the published one."""
    import paddle
    from paddle.vision.models import resnet18

    from hapi_runner.model import finetune

    url, _ = finetune.imagenet_source("resnet18")
    paddle.seed(1)
    path = home / os.path.basename(url)
    paddle.save(resnet18(num_classes=1000).state_dict(), str(path))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(finetune, "imagenet_source", lambda model: (url, md5))
    return path


def test_imagenet_weights_come_from_paddles_cache(weights_home, monkeypatch):
    from hapi_runner.model.finetune import imagenet_weights

    path = _cache_resnet18(weights_home, monkeypatch)
    assert imagenet_weights("resnet18", download=False) == str(path)


def test_imagenet_weights_not_cached_offline_say_where_to_put_them(weights_home):
    from hapi_runner.model.finetune import imagenet_weights

    expected = f"put resnet18.pdparams (from https://paddle-hapi.bj.bcebos.com/models/resnet18.pdparams, md5 " \
               f"cf548f46534aa3560945be4b95cd11c4) at {weights_home / 'resnet18.pdparams'}, or pass --pretrained PATH"
    with pytest.raises(HapiRunnerError) as excinfo:
        imagenet_weights("resnet18", download=False)
    assert expected in str(excinfo.value)


def test_a_damaged_cached_file_is_named(weights_home):
    from hapi_runner.model.finetune import imagenet_weights

    (weights_home / "resnet34.pdparams").write_bytes(b"half a file")
    with pytest.raises(HapiRunnerError, match="resnet34.pdparams is damaged"):
        imagenet_weights("resnet34", download=False)


@pytest.mark.parametrize("model", ["lenet", "vgg11", "x.py:Net"])
def test_models_without_published_weights_are_refused(model):
    from hapi_runner.model.finetune import imagenet_source

    with pytest.raises(UsageError, match="publishes no ImageNet weights for .*Pass --pretrained PATH"):
        imagenet_source(model)


# -- end to end ------------------------------------------------------------------------

NETS = {
    "lenet5": (LENET5, "LeNet5", ["--image-size", "32"]),
    "resnet": (RESNET, "ResNet", ["--model-kwargs", "layers=[1, 1]"]),
    "no-arguments": (NO_ARGUMENTS, "Tiny", []),
    "factory": (FACTORY, "make_net", ["--model-kwargs", "width=6"]),
}
STOPPING = ["--early-stopping-patience", "1", "--min-delta", "10"]  # nothing improves by 10: the second epoch stops the run


@pytest.mark.slow
@pytest.mark.parametrize("net", sorted(NETS))
def test_a_network_from_a_file_trains_resumes_evaluates_exports_and_predicts(tmp_path, net, capsys):
    text, name, extra = NETS[net]
    model = f"{write_net(tmp_path, 'mynet.py', text)}:{name}"
    run = tmp_path / "run"
    assert main(["train", "--model", model, *QUICK, *extra, "--save-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == model
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["resumed_from_epoch"] == 1 and results["epochs_run"] == 2
    assert results["export"]["top1_agreement"] == 1.0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["num_samples"] == 16 and evaluation["epoch"] == 2
    assert main(["export", str(run)]) == 0
    sidecar = json.loads((run / "inference" / "hapi_runner.json").read_text())
    side = 32 if net == "lenet5" else 28
    assert sidecar["image_size"] == side and sidecar.get("resize_to") == (32 if net == "lenet5" else None)
    from PIL import Image

    Image.fromarray(np.full((28, 28), 128, np.uint8)).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "digit.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["class_name"].startswith("class_")
    assert main(["summary", "--model", model, "--dataset", "mnist", *extra, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, side, side]


@pytest.mark.slow
def test_early_stopping_and_visualdl_with_a_network_from_a_file(tmp_path):
    model = write_net(tmp_path, "mynet.py", FACTORY) + ":make_net"
    run = tmp_path / "run"
    quick = [a for a in QUICK if a != "--no-visualdl"]  # VisualDL's hyper-parameters hold the kwargs mapping too
    assert main(["train", "--model", model, *quick, "--model-kwargs", "width=5", "--epochs", "3", *STOPPING, "--no-export",
                 "--save-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["stopped_early"] and results["epochs_run"] == 2
    assert any(name.startswith("vdlrecords") for name in os.listdir(run / "visualdl"))


@pytest.mark.slow
def test_an_edited_network_is_refused_on_resume_by_the_tensor_that_changed(tmp_path, capsys):
    path = write_net(tmp_path, "mynet.py", LENET5)
    run = tmp_path / "run"
    assert main(["train", "--model", f"{path}:LeNet5", "--image-size", "32", *QUICK, "--no-export", "--save-dir", str(run)]) == 0
    write_net(tmp_path, "mynet.py", LENET5, WIDTH=24)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "checkpoint is for network tensor fc1.weight 400x16, this run is fc1.weight 400x24" in capsys.readouterr().err


@pytest.mark.slow
def test_a_network_built_in_python_trains_and_is_passed_again_to_evaluate(tmp_path):
    import importlib.util

    from hapi_runner import Runner
    from hapi_runner.deploy import evaluate_run, export_run

    spec = importlib.util.spec_from_file_location("py_nets", write_net(tmp_path, "py_nets.py", RESNET))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, epochs=1, batch_size=32,
                         verbose=0, threads="1", visualdl=False, save_dir=str(tmp_path / "run"))
    results = Runner(config, network=module.ResNet([1, 1])).fit()
    assert results["model"] == "<python object: ResNet>" and results["export"]["top1_agreement"] == 1.0
    with pytest.raises(UsageError, match=r"network built in Python \(<python object: ResNet>\).*Runner\(config, network=net\)"):
        evaluate_run(str(tmp_path / "run"))
    assert evaluate_run(str(tmp_path / "run"), network=module.ResNet([1, 1]))["num_samples"] == 16
    assert export_run(str(tmp_path / "run"), network=module.ResNet([1, 1]))["top1_agreement"] == 1.0
    resumed = Runner(TrainConfig.for_resume(str(tmp_path / "run"), epochs=2), network=module.ResNet([1, 1])).fit()
    assert resumed["resumed_from_epoch"] == 1
    with pytest.raises(UsageError, match="network must be a paddle.nn.Layer"):
        Runner(config, network=module.ResNet)


@pytest.mark.slow
def test_a_forward_paddle_cannot_convert_keeps_the_training(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    model = write_net(tmp_path, "mynet.py", NOT_CONVERTIBLE) + ":HostRoundTrip"
    # A process of its own, as a user's run is: Paddle words a second failed conversion of the same forward
    # in one process differently (without the source line), so an earlier test's conversion would change this one.
    done = subprocess.run([sys.executable, "-m", "hapi_runner", "train", "--model", model, *QUICK, "--save-dir", str(run)],
                          capture_output=True, text=True, timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    warning = [line for line in err.splitlines() if "could not export HostRoundTrip" in line]
    line = NOT_CONVERTIBLE.splitlines().index(next(l for l in NOT_CONVERTIBLE.splitlines() if "x.numpy()" in l)) + 1
    assert len(warning) == 1 and f"(at {tmp_path / 'mynet.py'}:{line})" in warning[0]
    results = json.loads((run / "results.json").read_text())
    assert "could not export HostRoundTrip" in results["export"]["error"]
    assert (run / "checkpoints" / "last" / "model.pdparams").exists()
    assert not (run / "inference").exists()


@pytest.mark.slow
def test_imagenet_weights_with_a_frozen_backbone(tmp_path, weights_home, monkeypatch, capsys):
    import paddle

    path = _cache_resnet18(weights_home, monkeypatch)
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet18", "--pretrained", "imagenet", "--freeze-backbone", *QUICK, "--no-export",
                 "--save-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"pretrained weights from {path}: " in out and "1 adapted (conv1.weight 3->1 channels)" in out
    assert "2 skipped (fc.weight [512, 1000]->[512, 10], fc.bias [1000]->[10])" in out
    assert "training the classifier 'fc' only" in out
    source = paddle.load(str(path))
    trained = paddle.load(str(run / "checkpoints" / "last" / "model.pdparams"))
    np.testing.assert_array_equal(np.asarray(trained["layer1.0.conv1.weight"]), np.asarray(source["layer1.0.conv1.weight"]))
    assert not np.allclose(np.asarray(trained["fc.weight"]), 0)


@pytest.mark.slow
def test_a_backbone_lr_mult_of_zero_trains_the_classifier_alone(tmp_path):
    from hapi_runner import Runner

    model = write_net(tmp_path, "mynet.py", LENET5) + ":LeNet5"
    config = TrainConfig(model=model, image_size=32, dataset="synthetic", synthetic_like="mnist", synthetic_size=64,
                         epochs=1, batch_size=32, verbose=0, threads="1", visualdl=False, export=False,
                         backbone_lr_mult=0.0, save_dir=str(tmp_path / "run"))
    runner = Runner(config)
    before = {k: v.numpy().copy() for k, v in runner.network.state_dict().items()}
    runner.fit()
    after = {k: v.numpy() for k, v in runner.network.state_dict().items()}
    assert np.array_equal(before["features.0.weight"], after["features.0.weight"])
    assert not np.array_equal(before["fc2.weight"], after["fc2.weight"])


@pytest.mark.slow
def test_a_launched_job_builds_the_network_from_its_file_in_every_rank(tmp_path):
    from test_distributed import TRAIN_PY, launch, skip_unless_launch_works, worker_log

    write_net(tmp_path / "nets", "mynet.py", FACTORY)
    args = [TRAIN_PY, "--model", "nets/mynet.py:make_net", *QUICK, "--no-export", "--save-dir", tmp_path / "run"]
    code, out = launch(args, tmp_path / "log", tmp_path)  # a path relative to the folder every rank starts in
    if code != 0:
        skip_unless_launch_works(tmp_path, out + worker_log(tmp_path / "log", 0) + worker_log(tmp_path / "log", 1))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["model"] == "nets/mynet.py:make_net" and results["epochs_run"] == 1
    assert "2 processes" in worker_log(tmp_path / "log", 0)
