"""StaticExport, the export engine (hapi_runner.deploy.export) and the paddle.inference side (hapi_runner.deploy.inference).

Tiny networks and in-memory data; every export is loaded back with
paddle.inference and compared with the dygraph network.
"""

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import paddle
import pytest
from paddle import nn

from hapi_runner.callbacks import StaticExport
from hapi_runner.deploy import export as export_module
from hapi_runner.deploy.export import ExportVerificationError, compare_logits, export_model, verify_export
from hapi_runner.errors import HapiRunnerError, UsageError
from hapi_runner.deploy.inference import InferenceModel
from hapi_runner.deploy.layout import build_sidecar, find_model_files, load_sidecar
from helpers import ImageSet

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

CLASSES = [f"class_{i}" for i in range(10)]


class TinyNet(nn.Layer):
    """Conv, batch norm and dropout: layers that behave differently in train and eval mode."""

    def __init__(self, channels=3, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2D(channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2D(4)
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        x = self.drop(nn.functional.relu(self.bn(self.conv(x))))
        return self.fc(paddle.flatten(self.pool(x), 1))


def sidecar_for(shape):
    return build_sidecar([0.5] * shape[0], [0.25] * shape[0], shape, class_names=CLASSES, model="tiny", dataset="synthetic")


def batch_for(shape, n=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype("float32")


def eval_logits(network, batch):
    network.eval()
    with paddle.no_grad():
        out = network(paddle.to_tensor(batch)).numpy()
    network.train()
    return out


@pytest.mark.parametrize("make,shape", [(lambda: TinyNet(3), [3, 8, 8]), (lambda: paddle.vision.models.LeNet(), [1, 28, 28])],
                         ids=["tinynet", "lenet"])
def test_round_trip_matches_dygraph(tmp_path, make, shape):
    paddle.seed(1)
    network = make()
    network.train()  # as a callback finds it mid-fit
    batch = batch_for(shape)
    folder = tmp_path / "run" / "inference"

    report = export_model(network, str(folder), shape, sidecar_for(shape), batch)

    assert network.training, "export must restore train mode"
    assert sorted(os.listdir(tmp_path / "run")) == ["inference"], "no staging folder may be left behind"
    assert report["passed"] and report["verified"] and report["num_samples"] == 64
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 1e-4
    assert report["engine"].startswith("paddle.inference cpu oneDNN")
    assert json.loads((folder / "export_report.json").read_text())["top1_agreement"] == 1.0

    sidecar = load_sidecar(str(folder))
    assert sidecar["input_shape"] == shape and sidecar["channels"] == shape[0]
    assert sidecar["mean"] == [0.5] * shape[0] and sidecar["std"] == [0.25] * shape[0] and sidecar["scale"] == "0-1"
    assert sidecar["class_names"] == CLASSES and sidecar["model"] == "tiny" and sidecar["dataset"] == "synthetic"
    # paddle.jit.save writes a PIR graph from Paddle 3.0 on, a ProgramDesc before.
    expected = ("pir", "model.json") if int(paddle.__version__.split(".")[0]) >= 3 else ("pdmodel", "model.pdmodel")
    assert (sidecar["file_format"], sidecar["model_file"]) == expected
    assert sidecar["paddle_version"] == paddle.__version__

    engine = InferenceModel(str(folder), threads=1)
    expected = eval_logits(network, batch)
    for n in (1, 3, 64):
        out = engine.predict(batch[:n])
        assert out.shape == (n, 10)
        np.testing.assert_allclose(out, expected[:n], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(engine.predict(batch, batch_size=5), expected, atol=1e-4, rtol=1e-4)


def test_preprocess_pads_and_normalises_like_training(tmp_path):
    shape = [1, 32, 32]
    export_model(paddle.vision.models.LeNet(), str(tmp_path / "inference"), [1, 28, 28],
                 build_sidecar([0.1307], [0.3081], [1, 28, 28]), None)
    engine = InferenceModel(str(tmp_path / "inference"))
    engine.sidecar = dict(engine.sidecar, pad_to=32, input_shape=shape)  # as for VGG on MNIST
    images = np.full((2, 28, 28), 255, np.uint8)
    out = engine.preprocess(images)
    assert out.shape == (2, 1, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 2, 2], (1 - 0.1307) / 0.3081, rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0, 0], -0.1307 / 0.3081, rtol=1e-6)


def test_reexport_replaces_the_folder(tmp_path):
    folder = tmp_path / "inference"
    shape = [3, 8, 8]
    export_model(TinyNet(), str(folder), shape, sidecar_for(shape), batch_for(shape), metadata={"epoch": 1})
    (folder / "stale.txt").write_text("from the first export")
    export_model(TinyNet(), str(folder), shape, sidecar_for(shape), batch_for(shape), metadata={"epoch": 2})
    assert not (folder / "stale.txt").exists()
    assert load_sidecar(str(folder))["epoch"] == 2
    assert sorted(os.listdir(tmp_path)) == ["inference"]


def test_verification_failure_keeps_the_good_export(tmp_path, monkeypatch):
    shape = [3, 8, 8]
    paddle.seed(2)
    network, other = TinyNet(), TinyNet()
    folder = tmp_path / "inference"
    export_model(network, str(folder), shape, sidecar_for(shape), batch_for(shape))
    # The trained network "says" something else than what was exported: another network's logits.
    monkeypatch.setattr(export_module, "dygraph_logits", lambda net, batch: eval_logits(other, batch))

    with pytest.raises(ExportVerificationError, match=r"agrees with the trained network on .* of 64 images") as info:
        export_model(network, str(folder), shape, sidecar_for(shape), batch_for(shape))

    assert "\n" not in str(info.value)
    assert json.loads((folder / "export_report.json").read_text())["passed"] is True
    rejected = json.loads((tmp_path / "inference-rejected" / "export_report.json").read_text())
    assert rejected["passed"] is False and rejected["top1_agreement"] < 0.999


def test_verify_export_against_a_different_network(tmp_path):
    shape = [3, 8, 8]
    paddle.seed(3)
    export_model(TinyNet(), str(tmp_path / "inference"), shape, sidecar_for(shape), None)
    report = verify_export(TinyNet(), str(tmp_path / "inference"), verify_batch=batch_for(shape), min_top1_agreement=0.999)
    assert report["passed"] is False and report["max_abs_diff"] > 1e-3


def test_near_ties_count_as_agreement():
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]], np.float32)
    actual = np.array([[1.0, 1.0 + 1e-6, 0.0], [0.0, 2.0, 1.0]], np.float32)
    result = compare_logits(expected, actual)
    assert result["top1_agreement"] == 1.0 and result["top1_exact_agreement"] == 0.5 and result["near_ties"] == 1
    clear_miss = compare_logits(expected, np.array([[0.0, 0.0, 5.0], [0.0, 2.0, 1.0]], np.float32))
    assert clear_miss["top1_agreement"] == 0.5


def test_pdmodel_format_from_paddle_2_style_export(tmp_path):
    # Paddle 2.6 (and 3.x with PIR off) writes .pdmodel; a subprocess makes one without touching this process's flags.
    script = textwrap.dedent(f"""
        import numpy as np, paddle
        from paddle.static import InputSpec
        paddle.seed(0)
        net = paddle.vision.models.LeNet(); net.eval()
        paddle.jit.save(net, {str(tmp_path / 'legacy' / 'model')!r}, input_spec=[InputSpec([None, 1, 28, 28], 'float32', 'image')])
        x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype('float32')
        np.save({str(tmp_path / 'x.npy')!r}, x)
        np.save({str(tmp_path / 'y.npy')!r}, net(paddle.to_tensor(x)).numpy())
    """)
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True, timeout=120)
    model_file, params_file = find_model_files(str(tmp_path / "legacy"))
    assert model_file.endswith("model.pdmodel") and params_file.endswith("model.pdiparams")

    engine = InferenceModel(str(tmp_path / "legacy" / "model"))
    assert engine.file_format == "pdmodel" and engine.sidecar is None
    np.testing.assert_allclose(engine.predict(np.load(tmp_path / "x.npy")), np.load(tmp_path / "y.npy"), atol=1e-4, rtol=1e-4)


def test_find_model_files_prefers_pir_and_accepts_prefixes(tmp_path):
    for name in ("model.json", "model.pdmodel", "model.pdiparams"):
        (tmp_path / name).write_bytes(b"")
    expected = (str(tmp_path / "model.json"), str(tmp_path / "model.pdiparams"))
    assert find_model_files(str(tmp_path)) == expected
    assert find_model_files(str(tmp_path / "model")) == expected
    assert find_model_files(str(tmp_path / "model.pdiparams")) == expected


@pytest.mark.parametrize("call,match", [
    (lambda d: InferenceModel(d), "no exported graph at"),
    (lambda d: find_model_files(os.path.join(d, "model")), "no exported graph at"),
    (lambda d: load_sidecar(d), "has no hapi_runner.json"),
])
def test_missing_files_are_one_line_errors(tmp_path, call, match):
    with pytest.raises(HapiRunnerError, match=match) as info:
        call(str(tmp_path))
    assert "\n" not in str(info.value)


def test_graph_without_weights(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(HapiRunnerError, match="has no weights file"):
        find_model_files(str(tmp_path))


@pytest.mark.parametrize("kwargs,match", [
    (dict(min_top1_agreement=1.01), "min_top1_agreement must be a share in"),
    (dict(min_top1_agreement=0), "min_top1_agreement must be a share in"),
    (dict(verify_batch=np.zeros((4, 1, 28, 28), np.uint8)), "preprocessed float32"),
    (dict(verify_batch=np.zeros((4, 3, 28, 28), np.float32)), r"verify_batch must be images shaped \[N, 1, 28, 28\]"),
    (dict(input_shape=[28, 28]), "input_shape must be"),
    (dict(sidecar={"mean": [0.1]}), "sidecar lacks std"),
    (dict(sidecar={"mean": [0.1, 0.2], "std": [0.3]}), r"sidecar mean must hold one value per channel \(1\) or one for all, got 2"),
    (dict(sidecar={"mean": [0.1], "std": [0.3], "scale": "0-255"}), "sidecar scale must be '0-1'"),
    (dict(monitor="val_auc"), "pass mode='min' or mode='max'"),
])
def test_constructor_checks_arguments(tmp_path, kwargs, match):
    args = dict(directory=str(tmp_path / "inference"), input_shape=[1, 28, 28], sidecar=sidecar_for([1, 28, 28]))
    args.update(kwargs)
    with pytest.raises(UsageError, match=match):
        StaticExport(**args)


def test_predict_rejects_wrong_shapes(tmp_path):
    shape = [3, 8, 8]
    export_model(TinyNet(), str(tmp_path / "inference"), shape, sidecar_for(shape), None)
    engine = InferenceModel(str(tmp_path / "inference"))
    with pytest.raises(UsageError, match=r"takes images shaped \[3, 8, 8\]"):
        engine.predict(np.zeros((2, 3, 9, 9), np.float32))
    with pytest.raises(UsageError, match="normalised float32"):
        engine.predict(np.zeros((2, 3, 8, 8), np.uint8))


def test_on_best_exports_each_new_best_only(tmp_path):
    shape = [3, 8, 8]
    network = TinyNet()
    folder = tmp_path / "inference"
    callback = StaticExport(str(folder), shape, sidecar_for(shape), batch_for(shape, 8), on_best=True)
    callback.set_model(types.SimpleNamespace(network=network))
    callback.set_params({"metrics": ["loss", "acc_top1", "acc_top5"]})
    callback.on_train_begin()
    for epoch, acc in enumerate([0.5, 0.4, 0.6]):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": [1.0], "acc_top1": 0.3})
        callback.on_eval_end({"loss": [1.0], "acc_top1": acc, "acc_top5": 0.9})
        assert load_sidecar(str(folder))["epoch"] == (1 if epoch < 2 else 3)
    before = (folder / "hapi_runner.json").stat().st_mtime_ns
    callback.on_train_end()
    assert (folder / "hapi_runner.json").stat().st_mtime_ns == before, "the best export must not be overwritten by the last epoch"
    assert callback.state_dict() == {"best": 0.6, "best_epoch": 3, "monitor": "acc_top1", "mode": "max", "exported_epoch": 3}
    assert load_sidecar(str(folder))["reason"] == "best acc_top1=0.6"


def _fit(callback, epochs=2, eval_data=True):
    paddle.seed(0)
    network = paddle.vision.models.LeNet()
    model = paddle.Model(network, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"),
                         paddle.static.InputSpec([None, 1], "int64", "label"))
    model.prepare(paddle.optimizer.Momentum(0.01, parameters=network.parameters()), nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy(topk=(1, 5)))
    model.fit(ImageSet(64), ImageSet(32, seed=1) if eval_data else None, batch_size=16, epochs=epochs, verbose=0,
              callbacks=[callback])
    return network


@pytest.mark.parametrize("on_best", [False, True], ids=["at-end", "on-best"])
def test_callback_in_fit(tmp_path, on_best):
    shape = [1, 28, 28]
    folder = tmp_path / "run" / "inference"
    verify = ImageSet(32, seed=1).images
    callback = StaticExport(str(folder), shape, sidecar_for(shape), verify, on_best=on_best)
    network = _fit(callback, epochs=3)

    sidecar = load_sidecar(str(folder))
    report = json.loads((folder / "export_report.json").read_text())
    assert report["passed"] and report["num_samples"] == 32 and callback.report == report
    if on_best:
        assert sidecar["epoch"] == callback.best_epoch == callback.exported_epoch
        assert sidecar["reason"].startswith("best acc_top1=")
    else:
        assert sidecar["epoch"] == 3 and sidecar["reason"] == "end of training"
        logits = InferenceModel(str(folder), threads=1).predict(verify)
        np.testing.assert_allclose(logits, eval_logits(network, verify), atol=1e-4, rtol=1e-4)


def test_on_best_without_evaluation_exports_at_the_end(tmp_path):
    shape = [1, 28, 28]
    callback = StaticExport(str(tmp_path / "inference"), shape, sidecar_for(shape), on_best=True, monitor="acc_top1")
    _fit(callback, epochs=1, eval_data=False)
    assert load_sidecar(str(tmp_path / "inference"))["reason"] == "end of training"
    assert json.loads((tmp_path / "inference" / "export_report.json").read_text())["verified"] is False


PIR_NOISE = "Paddle static graph(PIR) not support input out tensor"


@pytest.mark.parametrize("how", ["paddle.jit.save", "export_model"])
def test_export_keeps_paddles_messages_but_the_pir_out_tensor_warning(tmp_path, how):
    # Paddle 3.x prints the warning from C++, once per process, on the first traced `a + b`; each case
    # gets its own process. Another line written to the descriptor while jit.save runs must still come out.
    script = tmp_path / "export.py"  # a file: jit.save reads the source of forward
    script.write_text(textwrap.dedent("""
        import os, sys
        import paddle
        from hapi_runner.deploy.export import export_model
        from hapi_runner.deploy.layout import build_sidecar

        class Residual(paddle.nn.Layer):
            def __init__(self):
                super().__init__()
                self.fc = paddle.nn.Linear(16, 16)

            def forward(self, x):
                x = paddle.flatten(x, 1)
                return self.fc(x) + x

        real_save = paddle.jit.save

        def save(*args, **kwargs):
            os.write(2, b"a line of Paddle's own" + bytes([10]))
            real_save(*args, **kwargs)

        paddle.jit.save = save
        how, folder, shape = sys.argv[1], sys.argv[2], [1, 4, 4]
        if how == "paddle.jit.save":
            save(Residual(), os.path.join(folder, "model"), input_spec=[paddle.static.InputSpec([None, *shape], "float32", "image")])
        else:
            export_model(Residual(), folder, shape, build_sidecar([0.5], [0.5], shape))
        print("done", file=sys.stderr)
    """))
    child = subprocess.run([sys.executable, str(script), how, str(tmp_path / "inference")], capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    lines = child.stderr.splitlines()
    assert lines.count("a line of Paddle's own") == 1 and lines[-1] == "done", child.stderr
    noisy = [line for line in lines if PIR_NOISE in line]
    paddle_3 = int(paddle.__version__.split(".")[0]) >= 3
    assert len(noisy) == (1 if how == "paddle.jit.save" and paddle_3 else 0), child.stderr


def test_a_kill_between_the_two_renames_of_the_swap_loses_no_export(tmp_path):
    # The child exports twice and SIGKILLs itself as the second export moves into place:
    # the first export is then aside as .tmp-old-inference-<pid>, and no inference/ exists.
    folder = tmp_path / "inference"
    code = textwrap.dedent("""
        import os, signal, sys
        import numpy as np, paddle
        from hapi_runner.deploy.export import export_model
        from hapi_runner.deploy.layout import build_sidecar

        folder, shape = sys.argv[1], [1, 4, 4]
        net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(16, 3))
        export_model(net, folder, shape, build_sidecar([0.5], [0.5], shape), metadata={"epoch": 1})
        real_replace = os.replace

        def replace(src, dst):
            if os.path.basename(src).startswith(".tmp-inference-"):
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)

        os.replace = replace
        export_model(net, folder, shape, build_sidecar([0.5], [0.5], shape), metadata={"epoch": 2})
    """)
    child = subprocess.Popen([sys.executable, "-c", code, str(folder)], stderr=subprocess.PIPE, text=True)
    assert child.wait() == -9, child.stderr.read()
    left = sorted(os.listdir(tmp_path))
    assert not folder.exists() and len(left) == 2
    assert left[0].startswith(".tmp-inference-") and left[0].endswith(f"-{child.pid}")
    assert left[1] == f".tmp-old-inference-{child.pid}"

    export_module.recover_export(str(folder))
    assert sorted(os.listdir(tmp_path)) == ["inference"]
    assert load_sidecar(str(folder))["epoch"] == 1
    InferenceModel(str(folder))


def test_recovery_removes_dead_litter_beside_an_export_and_spares_a_live_writer(tmp_path):
    shape = [3, 8, 8]
    folder = tmp_path / "inference"
    export_model(TinyNet(), str(folder), shape, sidecar_for(shape), None, metadata={"epoch": 3})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (f".tmp-old-inference-{dead.pid}", f".tmp-inference-y-{dead.pid}", f".tmp-inference-z-{os.getppid()}"):
        (tmp_path / name).mkdir()
    (tmp_path / ".tmp-old-other-1").mkdir()  # another folder's litter is that folder's business

    callback = StaticExport(str(folder), shape, sidecar_for(shape))
    callback.on_train_begin()
    assert sorted(os.listdir(tmp_path)) == [".tmp-inference-z-" + str(os.getppid()), ".tmp-old-other-1", "inference"]
    assert load_sidecar(str(folder))["epoch"] == 3
