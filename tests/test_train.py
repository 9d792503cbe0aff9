"""End to end: Runner and train.py on files in the real formats, and on the embedded real data."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_config
from hapi_runner import Runner

RESULT_KEYS = {"final_eval", "best", "epochs_run", "train_seconds", "total_seconds", "images_per_second",
               "stopped_early", "stop_reason", "paddle_version", "device"}


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "cifar100"])
@pytest.mark.parametrize("model", ["lenet", "resnet50", "vgg16"])
def test_card_models_train_on_each_dataset(data_root, tmp_path, model, dataset):
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


def test_numbered_run_folders_are_never_reused(data_root, tmp_path):
    cfg = tiny_config(data_root, tmp_path, save_dir=None, output_root=str(tmp_path / "out"))
    first = Runner(cfg).fit()["run_dir"]
    second = Runner(cfg).fit()["run_dir"]
    assert os.path.basename(first) == "run_001" and os.path.basename(second) == "run_002"


def test_amp_on_cpu_warns_and_trains_in_float32(data_root, tmp_path, caplog):
    runner = Runner(tiny_config(data_root, tmp_path, amp="O1"))
    assert runner.amp is None
    assert "GPU training only" in caplog.text
