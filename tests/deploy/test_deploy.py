"""evaluate, predict and export on a trained run: both engines, image files, ONNX, and bad input."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from hapi_runner import Runner
from hapi_runner.cli.app import main

pytestmark = [pytest.mark.smoke, pytest.mark.slow]  # smoke: also run against Paddle 2.6 by .ci/run


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """A one-epoch LeNet run on the generated MNIST files, and its Runner."""
    tmp = tmp_path_factory.mktemp("deploy")
    runner = Runner(tiny_config(data_root, tmp, epochs=2, batch_size=8))
    runner.fit()
    return runner


def cli(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err):
    lines = [l for l in err.splitlines() if l.startswith("hapi-runner: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("engine", ["dygraph", "inference"])
def test_evaluate_counts_every_sample_once_on_both_engines(trained, capsys, engine):
    code, out, _ = cli(capsys, ["evaluate", trained.run_dir, "--engine", engine, "--json", "--batch-size", "5"])
    assert code == 0
    result = json.loads(out)
    assert result["num_samples"] == 16 and np.sum(result["confusion_matrix"]) == 16
    final = json.loads(open(f"{trained.run_dir}/results.json").read())["final_eval"]
    assert result["acc_top1"] == pytest.approx(final["acc_top1"], abs=1e-9)
    assert result["loss"] == pytest.approx(final["loss"], rel=1e-4)
    assert result["images_per_second"] > 0 and len(result["per_class_accuracy"]) == 10
    csv_text = open(result["confusion_files"]["csv"]).read().splitlines()
    assert len(csv_text) == 11 and csv_text[0].startswith("true \\ predicted")
    assert open(result["confusion_files"]["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluate_best_checkpoint_and_another_dataset_of_the_same_shape(trained, data_root, capsys):
    code, out, _ = cli(capsys, ["evaluate", trained.run_dir, "--checkpoint", "best", "--engine", "inference",
                                "--dataset", "fashion-mnist", "--data-dir", str(data_root / "fashion-mnist"), "--json"])
    assert code == 0
    assert json.loads(out)["dataset"] == "fashion-mnist"


def scores_from_confusion(confusion):
    """Precision, recall and F1 per class, computed here from the counts alone."""
    confusion = np.asarray(confusion, dtype=np.float64)
    hits, predicted, actual = np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits), where=precision + recall > 0)
    return precision, recall, f1, actual


def test_evaluate_reports_precision_recall_f1_per_class(trained, capsys):
    code, out, _ = cli(capsys, ["evaluate", trained.run_dir, "--json"])
    assert code == 0
    result = json.loads(out)
    precision, recall, f1, support = scores_from_confusion(result["confusion_matrix"])
    assert result["precision"] == pytest.approx(precision.tolist()) and result["recall"] == pytest.approx(recall.tolist())
    assert result["f1"] == pytest.approx(f1.tolist()) and result["support"] == support.astype(int).tolist()
    assert result["macro"]["f1"] == pytest.approx(f1.mean()) and result["binary"] is None
    assert result["class_names"] == trained.eval_data.class_names
    code, out, _ = cli(capsys, ["evaluate", trained.run_dir])
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in result["class_names"]]
    assert code == 0 and "precision  recall" in out and len(rows) == 10
    assert [float(r[3]) for r in rows] == pytest.approx(f1.tolist(), abs=1e-4)


@pytest.fixture(scope="module")
def two_classes():
    """A two-class dataset shape (1x28x28, classes 0 and 1), for ``--dataset synthetic --synthetic-like pairs``."""
    from hapi_runner.datasets import registry

    spec = registry.DatasetSpec("pairs", 1, 28, 2, (0.5,), (0.25,), "embedded", class_names=("dark", "bright"))
    registry.DATASETS["pairs"] = spec
    yield spec
    del registry.DATASETS["pairs"]


def test_two_classes_get_roc_auc_sensitivity_and_specificity(two_classes, data_root, tmp_path, capsys):
    runner = Runner(tiny_config(data_root, tmp_path, dataset="synthetic", synthetic_like="pairs", synthetic_size=128,
                                batch_size=16, visualdl=False, report=True))  # class_metrics in results.json come with the report pass
    runner.fit()
    capsys.readouterr()
    code, out, _ = cli(capsys, ["evaluate", runner.run_dir, "--json"])
    assert code == 0
    result = json.loads(out)
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    binary = result["binary"]
    assert binary["positive_class"] == 1 and "roc" not in binary
    assert binary["sensitivity"] == pytest.approx(tp / (tp + fn)) and binary["specificity"] == pytest.approx(tn / (tn + fp))
    assert 0.0 <= binary["roc_auc"] <= 1.0 and len(result["f1"]) == 2
    saved = json.loads(open(f"{runner.run_dir}/results.json").read())["class_metrics"]
    assert saved["confusion_matrix"] == result["confusion_matrix"] and "roc" not in saved["binary"]
    assert saved["binary"]["roc_auc"] == pytest.approx(binary["roc_auc"], abs=1e-6)
    code, out, _ = cli(capsys, ["evaluate", runner.run_dir])
    assert code == 0 and f"ROC-AUC {binary['roc_auc']:.4f}, sensitivity {binary['sensitivity']:.4f}" in out


@pytest.mark.parametrize("argv, expected_code, match", [
    (["evaluate", "/nonexistent/run"], 2, "does not exist"),
    (["evaluate", "{run}", "--dataset", "cifar10"], 2, "the model was trained on mnist"),
    (["evaluate", "{run}", "--engine", "tensorrt"], 2, "invalid choice"),
    (["evaluate", "{run}", "--checkpoint", "/nonexistent/ckpt"], 2, "does not exist"),
    (["export", "{run}", "--format", "tflite"], 2, "invalid choice"),
    (["evaluate", "{run}", "--tensorrt", "fp16"], 2, "--tensorrt applies to --engine inference"),
    (["evaluate", "{run}", "--engine", "inference", "--tensorrt", "fp16"], 2, "TensorRT runs on a GPU only"),
    (["export", "{run}", "--device", "gpu:x"], 2, "device 'gpu:x' is not valid"),
])
def test_evaluate_and_export_refuse_bad_input_in_one_line(trained, capsys, argv, expected_code, match):
    code, _, err = cli(capsys, [a.replace("{run}", trained.run_dir) for a in argv])
    assert code == expected_code, err
    assert match in error_line(err)


def test_a_checkpoint_of_another_model_is_refused(trained, data_root, tmp_path, capsys):
    other = Runner(tiny_config(data_root, tmp_path, model="resnet18"))
    other.fit()
    code, _, err = cli(capsys, ["evaluate", trained.run_dir, "--checkpoint", f"{other.run_dir}/checkpoints/last"])
    assert code == 2
    assert "resnet18" in error_line(err) and "lenet" in error_line(err)


def write_pngs(runner, folder, count=6):
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"img_{i}.png"
        Image.fromarray(runner.eval_data.images[i, 0]).save(path)
        paths.append(str(path))
    return paths


def test_predict_png_files_from_the_model_folder_alone(trained, tmp_path, capsys):
    paths = write_pngs(trained, tmp_path / "images")
    model_dir = tmp_path / "deployed"
    shutil.copytree(f"{trained.run_dir}/inference", model_dir)
    code, out, _ = cli(capsys, ["predict", str(model_dir), str(tmp_path / "images"), "--top-k", "3", "--json"])
    assert code == 0
    results = json.loads(out)
    assert [r["path"] for r in results] == paths
    expected = trained.predict()[:6]
    for result, probs in zip(results, expected):
        assert result["class_id"] == int(probs.argmax())
        assert result["probability"] == pytest.approx(float(probs.max()), abs=1e-4)
        assert result["class_name"] == trained.eval_data.class_names[result["class_id"]]
        assert len(result["top_k"]) == 3 and result["top_k"][0]["class_id"] == result["class_id"]


def test_predict_reads_npy_and_prints_a_line_per_file(trained, tmp_path, capsys):
    path = tmp_path / "digit.npy"
    np.save(path, trained.eval_data.images[0, 0])
    code, out, _ = cli(capsys, ["predict", trained.run_dir, str(path)])
    assert code == 0
    assert out.startswith(f"{path}: ") and out.count("\n") == 1


def test_predict_refuses_bad_files_in_one_line(trained, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image")
    png = tmp_path / "cut.png"
    Image.fromarray(trained.eval_data.images[0, 0]).save(png)
    png.write_bytes(png.read_bytes()[:60])
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_export").mkdir()
    cases = [
        ([trained.run_dir, str(tmp_path / "text.png")], "is not an image"),
        ([trained.run_dir, str(png)], "cannot be decoded"),
        ([trained.run_dir, str(tmp_path / "empty")], "has no images"),
        ([str(tmp_path / "no_export"), str(tmp_path / "text.png")], "holds no exported model"),
        ([trained.run_dir, str(tmp_path / "missing.png")], "does not exist"),
    ]
    for args, match in cases:
        code, _, err = cli(capsys, ["predict", *args])
        assert code != 0
        assert match in error_line(err), args


def test_export_again_from_the_best_checkpoint(trained, tmp_path, capsys):
    out_dir = tmp_path / "best-export"
    code, out, err = cli(capsys, ["export", trained.run_dir, "--checkpoint", "best", "--output", str(out_dir), "--json"])
    assert code == 0
    assert "replaced" not in err, "a new folder replaces nothing"
    report = json.loads(out)
    assert report["top1_agreement"] >= 0.999
    sidecar = json.loads((out_dir / "hapi_runner.json").read_text())
    assert sidecar["model"] == "lenet" and sidecar["scale"] == "0-1" and len(sidecar["class_names"]) == 10


def test_export_says_which_export_it_replaced(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained.run_dir, run, symlinks=True)  # the shared run's own export stays as it is
    before = json.loads((run / "inference" / "hapi_runner.json").read_text())
    assert (before["epoch"], before["reason"]) == (2, "end of training")
    code, out, err = cli(capsys, ["export", str(run), "--checkpoint", "best", "--json"])
    assert code == 0 and json.loads(out)["passed"]
    after = json.loads((run / "inference" / "hapi_runner.json").read_text())
    assert after["reason"] == "checkpoint best"
    line = (f"hapi_runner: replaced {run}/inference (epoch 2, end of training) "
            f"with the export of checkpoint best (epoch {after['epoch']})")
    assert [l for l in err.splitlines() if "replaced" in l] == [line], err


def test_export_checks_on_the_device_it_is_given(trained, tmp_path, capsys, monkeypatch):
    from hapi_runner.deploy import tasks as deploy_run

    seen = {}
    real = deploy_run.export_run
    monkeypatch.setattr(deploy_run, "export_run", lambda *a, **kw: seen.update(kw) or real(*a, **kw))
    run = tmp_path / "run"
    shutil.copytree(trained.run_dir, run, symlinks=True)
    code, out, _ = cli(capsys, ["export", str(run), "--device", "cpu", "--json"])
    assert code == 0 and json.loads(out)["passed"] and seen["device"] == "cpu"


def test_onnx_round_trip(trained, tmp_path, capfd):
    pytest.importorskip("paddle2onnx", reason="the [onnx] extra (paddle2onnx) is not installed")
    ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")
    code, out, err = cli(capfd, ["export", trained.run_dir, "--format", "onnx", "--output", str(tmp_path / "onnx"), "--json"])
    assert code == 0
    assert "\x1b[" not in err and "warning" not in err.lower(), err  # onnxruntime's coloured session warnings stay out
    report = json.loads(out)
    assert report["top1_agreement"] >= 0.999 and report["max_abs_diff"] < 1e-3
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = trained.eval_data.transform(trained.eval_data.images[:4])
    onnx_out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    np.testing.assert_array_equal(onnx_out.argmax(axis=1), trained.predict()[:4].argmax(axis=1))
