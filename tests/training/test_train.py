"""End to end: Runner and train.py on files in the real formats, and on the embedded real data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_config
from hapi_runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULT_KEYS = {"final_eval", "best", "epochs_run", "train_seconds", "total_seconds", "images_per_second",
               "stopped_early", "stop_reason", "paddle_version", "device"}


CARD_DATASETS = [("mnist", 1, 28, 10), ("cifar10", 3, 32, 10), ("cifar100", 3, 32, 100)]


@pytest.mark.parametrize("dataset, channels, side, classes", CARD_DATASETS)
# Building VGG-16 alone takes seconds (its 25,088-wide classifier); the inner loop has VGG-11 in test_models.
@pytest.mark.parametrize("model", ["lenet", "resnet50", pytest.param("vgg16", marks=pytest.mark.slow)])
def test_card_models_adapt_to_each_datasets_channels_classes_and_size(data_root, tmp_path, model, dataset, channels, side, classes):
    runner = Runner(tiny_config(data_root, tmp_path, model=model, dataset=dataset))
    side = 32 if model == "vgg16" else side  # VGG cannot shrink 28 pixels five times: MNIST is padded
    assert runner.input_shape == [channels, side, side]
    probs = runner.predict(runner.eval_data.subset(np.arange(2)))
    assert probs.shape == (2, classes) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
# One fit per family of layers: plain convolutions, residual bottlenecks, depthwise-separable blocks. A VGG's fit runs
# the same code and took 24 s here (its 25,088-wide classifier); its build and forward are checked above.
@pytest.mark.parametrize("model, dataset", [("lenet", "mnist"), ("resnet50", "cifar100"), ("mobilenet_v1", "cifar10")])
def test_one_short_fit_per_card_model_family(data_root, tmp_path, model, dataset):
    runner = Runner(tiny_config(data_root, tmp_path, model=model, dataset=dataset, batch_size=16))
    results = runner.fit()
    assert RESULT_KEYS <= set(results)
    assert results["epochs_run"] == 1 and results["device"] == "cpu"
    for key in ("loss", "acc_top1", "acc_top5"):
        assert np.isfinite(results["final_eval"][key])
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model"] == model
    assert json.loads((run / "results.json").read_text())["final_eval"] == results["final_eval"]
    assert (run / "metrics.csv").read_text().count("\n") == 2


@pytest.mark.slow
@pytest.mark.smoke
def test_lenet_learns_the_embedded_fashion_mnist(tmp_path):
    runner = Runner(model="lenet", dataset="fashion-mnist-mini", epochs=3, save_dir=str(tmp_path / "run"), verbose=0, threads="1")
    results = runner.fit()
    assert results["final_eval"]["acc_top1"] >= 0.75
    assert results["best"]["acc_top1"] >= results["final_eval"]["acc_top1"] - 1e-9
    assert results["train_seconds"] < results["total_seconds"]


@pytest.mark.smoke
def test_evaluate_counts_every_sample_once_and_predict_gives_probabilities(data_root, tmp_path):
    runner = Runner(tiny_config(data_root, tmp_path, batch_size=5))  # 16 test images: last batch of 1
    result = runner.evaluate()
    assert result["num_samples"] == 16
    probs = runner.predict()
    assert probs.shape == (16, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    top1 = (probs.argmax(axis=1) == runner.eval_data.labels).mean()
    assert abs(top1 - result["acc_top1"]) < 1e-6


@pytest.mark.smoke
def test_evaluate_reports_the_mean_loss_over_every_sample(data_root, tmp_path):
    runner = Runner(tiny_config(data_root, tmp_path, batch_size=6))  # 16 test images: batches of 6, 6 and 4
    probs = runner.predict().astype(np.float64)
    per_sample = -np.log(probs[np.arange(len(probs)), runner.eval_data.labels])
    assert abs(runner.evaluate()["loss"] - per_sample.mean()) < 1e-5
    assert abs(runner.evaluate(batch_size=16)["loss"] - per_sample.mean()) < 1e-5


@pytest.mark.slow
def test_a_chosen_thread_count_brings_no_paddle_thread_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, "train.py", "--threads", "2", "--model", "resnet18", "--dataset", "synthetic", "--synthetic-like", "mnist",
         "--synthetic-size", "32", "--epochs", "1", "--batch-size", "16", "--no-export", "--no-visualdl", "--verbose", "0",
         "--save-dir", str(tmp_path / "run")],
        cwd=ROOT, env={**env, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "WISELY" not in proc.stdout + proc.stderr and "OMP_NUM_THREADS set to" not in proc.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["threads"] == 2


def test_the_thread_warning_filter_passes_every_other_line():
    import io

    from hapi_runner.training.paddle_import import OMP_WARNING_PREFIXES, _DropLines

    out = io.StringIO()
    stream = _DropLines(out, OMP_WARNING_PREFIXES)
    print("WARNING: OMP_NUM_THREADS set to 2, not 1. The computation speed ...", file=stream)
    print("PLEASE USE OMP_NUM_THREADS WISELY.", file=stream)
    print("W1201 another Paddle message", file=stream)
    stream.write("\n")
    assert out.getvalue() == "W1201 another Paddle message\n\n"


@pytest.mark.slow
@pytest.mark.smoke
def test_save_and_load_round_trip(data_root, tmp_path):
    first = Runner(tiny_config(data_root, tmp_path))
    first.fit()
    first.save(str(tmp_path / "w" / "model"))
    second = Runner(tiny_config(data_root, tmp_path, save_dir=str(tmp_path / "other"), seed=9))
    second.load(str(tmp_path / "w" / "model"))
    np.testing.assert_allclose(second.predict(), first.predict(), rtol=1e-5, atol=1e-6)


def test_val_split_evaluates_on_held_out_train_images(data_root, tmp_path):
    runner = Runner(tiny_config(data_root, tmp_path, val_split=0.25))
    assert len(runner.train_data) == 36 and len(runner.eval_data) == 12


@pytest.mark.slow
def test_numbered_run_folders_are_never_reused(data_root, tmp_path):
    cfg = tiny_config(data_root, tmp_path, save_dir=None, output_root=str(tmp_path / "out"))
    first = Runner(cfg).fit()["run_dir"]
    second = Runner(cfg).fit()["run_dir"]
    assert os.path.basename(first) == "run_001" and os.path.basename(second) == "run_002"


def test_amp_on_cpu_warns_and_trains_in_float32(data_root, tmp_path, caplog):
    runner = Runner(tiny_config(data_root, tmp_path, amp="O1"))
    assert runner.amp is None
    assert "GPU training only" in caplog.text
