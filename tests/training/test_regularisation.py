"""The regularisation options end to end: each flag trains, the EMA weights are the ones evaluated, checkpointed
beside the training weights and continued exactly by a resume, and the LR schedule counts optimizer steps."""

import json
import os

import numpy as np
import paddle
import pytest

from hapi_runner import Runner, TrainConfig
from hapi_runner.runfolder.checkpoint_format import load_checkpoint
from hapi_runner.cli.app import main
from hapi_runner.deploy.tasks import evaluate_run, load_run
from hapi_runner.paddle_compat import grad_clip_of, loss_of

pytestmark = pytest.mark.slow

TINY = dict(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, epochs=1, threads="1", batch_size=32,
            verbose=0, visualdl=False, export=False, report=False)
FLAGS = ("--epochs", "1", "--threads", "1", "--batch-size", "32", "--verbose", "0", "--no-visualdl")
SYNTHETIC = ("--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64")

# Each flag with a value that turns it on, and the field it sets.
EACH = [
    ("--label-smoothing", "0.1", "label_smoothing", 0.1),
    ("--mixup", "0.4", "mixup", 0.4),
    ("--cutmix", "1.0", "cutmix", 1.0),
    ("--mix-prob", "0.5", "mix_prob", 0.5),
    ("--randaugment", "9", "randaugment", 9.0),
    ("--random-erasing", "0.5", "random_erasing", 0.5),
    ("--ema", "0.9", "ema", 0.9),
    ("--clip-grad", "0.5", "clip_grad", 0.5),
    ("--accumulate-grad-batches", "2", "accumulate_grad_batches", 2),
]
ALL_ON = ("--label-smoothing", "0.1", "--mixup", "0.2", "--cutmix", "1.0", "--mix-prob", "0.8", "--randaugment", "7",
          "--random-erasing", "0.25", "--ema", "0.99", "--clip-grad", "1.0", "--accumulate-grad-batches", "2")


def _trained(run_dir):
    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(run_dir, "results.json")) as fh:
        results = json.load(fh)
    return config, results


@pytest.mark.parametrize("flag, value, field, expected", EACH, ids=[e[0] for e in EACH])
def test_each_flag_trains_and_is_recorded(tmp_path, flag, value, field, expected):
    extra = ("--mixup", "0.4") if flag == "--mix-prob" else ()  # the probability of mixing needs a mixing
    assert main(["train", *SYNTHETIC, *FLAGS, flag, value, *extra, "--save-dir", str(tmp_path / "run")]) == 0
    config, results = _trained(tmp_path / "run")
    assert config[field] == expected
    assert np.isfinite(results["final_eval"]["loss"]) and results["epochs_run"] == 1


def test_everything_on_trains_on_the_embedded_set(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist-mini", *FLAGS, "--batch-size", "64", *ALL_ON, "--save-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "training accuracy is measured against each mixed image's dominant label" in out
    assert "evaluation, 'best', the export and the final figures use the EMA weights" in out
    config, results = _trained(run)
    assert config["ema"] == 0.99 and config["accumulate_grad_batches"] == 2
    assert results["final_eval"]["acc_top1"] > 0.2  # 10 classes: above chance after one epoch of 6000 images
    state = load_checkpoint(str(run / "checkpoints" / "last"))
    assert set(state["files"]) == {"model.pdparams", "model.pdopt", "rng.pdstate", "ema.pdparams", "state.json"} - {"state.json"}
    training, averaged = paddle.load(str(run / "checkpoints/last/model.pdparams")), paddle.load(str(run / "checkpoints/last/ema.pdparams"))
    assert set(training) == set(averaged)
    assert any(np.abs(np.asarray(training[k]) - np.asarray(averaged[k])).max() > 1e-4 for k in training)
    # The export at the end is of the EMA weights: it agreed with the network, which held them.
    assert results["export"]["top1_agreement"] == 1.0


def test_the_training_pipeline_alone_is_augmented_and_mixed():
    runner = Runner(TrainConfig(**TINY, randaugment=5, random_erasing=0.5, mixup=0.4, label_smoothing=0.1))
    train, evaluation = runner.train_data.transform, runner.eval_data.transform
    assert train.randaugment is not None and train.erasing is not None
    assert evaluation.randaugment is None and evaluation.erasing is None
    images, targets = next(iter(runner.train_loader))
    assert list(targets.shape) == [32, 10] and targets.dtype == paddle.float32
    np.testing.assert_allclose(targets.numpy().sum(axis=1), 1.0, rtol=1e-6)
    _, labels = next(iter(runner.eval_loader))
    assert list(labels.shape) == [16, 1] and labels.dtype == paddle.int64
    assert type(loss_of(runner.model)).__name__ == "SmoothedCrossEntropy" and loss_of(runner.model).epsilon == 0.1


def test_mixing_works_in_the_per_sample_pipeline(tmp_path):
    results = Runner(TrainConfig(**TINY, pipeline="per-sample", cutmix=1.0, mixup=0.5, save_dir=str(tmp_path / "run"))).fit()
    assert np.isfinite(results["final_eval"]["loss"])


def test_clip_grad_reaches_the_optimizer():
    runner = Runner(TrainConfig(**TINY, clip_grad=0.25))
    clip = grad_clip_of(runner.optimizer)
    assert isinstance(clip, paddle.nn.ClipGradByGlobalNorm) and clip.clip_norm == pytest.approx(0.25)
    assert grad_clip_of(Runner(TrainConfig(**TINY)).optimizer) is None


@pytest.mark.parametrize("accumulate, batch_size", [(1, 16), (3, 16)])
def test_the_lr_schedule_counts_optimizer_steps(tmp_path, accumulate, batch_size):
    # 64 images in batches of 16: 4 batches an epoch; with K=3 the optimizer steps after batches 3 and 4.
    config = TrainConfig(**{**TINY, "epochs": 2, "batch_size": batch_size}, lr_schedule="cosine",
                         accumulate_grad_batches=accumulate, save_dir=str(tmp_path / "run"))
    runner = Runner(config)
    steps_per_epoch = -(-4 // accumulate)
    assert runner.lr.inner.T_max == 2 * steps_per_epoch  # the cosine is laid out in optimizer steps
    runner.fit()
    assert runner.lr.inner.last_epoch == 2 * steps_per_epoch
    assert runner.lr.inner.last_lr == pytest.approx(0.0, abs=1e-12)  # the cosine ended where it should, at 0


def _weights(path):
    return {k: np.asarray(v) for k, v in paddle.load(str(path)).items()}


def test_ema_and_training_weights_continue_exactly_across_a_resume(tmp_path):
    # A step schedule (a cosine spans the run's epochs, which a 1-epoch run and its resume to 2 do not share).
    common = dict(TINY, epochs=2, batch_size=16, ema=0.9, mixup=0.4, random_erasing=0.5, accumulate_grad_batches=2,
                  lr_schedule="step", lr_step_epochs=[1], lr_gamma=0.5)
    Runner(TrainConfig(**common, save_dir=str(tmp_path / "straight"))).fit()
    Runner(TrainConfig(**{**common, "epochs": 1}, save_dir=str(tmp_path / "broken"))).fit()
    Runner(TrainConfig.for_resume(str(tmp_path / "broken"), epochs=2)).fit()
    for name in ("model.pdparams", "ema.pdparams"):
        straight = _weights(tmp_path / "straight/checkpoints/last" / name)
        resumed = _weights(tmp_path / "broken/checkpoints/last" / name)
        assert set(straight) == set(resumed)
        for key, value in straight.items():
            np.testing.assert_allclose(resumed[key], value, rtol=0, atol=1e-6, err_msg=f"{name}: {key}")
    straight_state = load_checkpoint(str(tmp_path / "straight/checkpoints/last"))
    resumed_state = load_checkpoint(str(tmp_path / "broken/checkpoints/last"))
    assert resumed_state["sources"]["ema"]["updates"] == straight_state["sources"]["ema"]["updates"] == 4
    assert resumed_state["monitor"]["value"] == straight_state["monitor"]["value"]


def test_a_resume_may_change_label_smoothing_but_not_the_ema(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SYNTHETIC, *FLAGS, "--ema", "0.9", "--save-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--ema", "0.99", "--threads", "1"]) == 2
    assert "checkpoint is for EMA decay (--ema) 0.9, this run is 0.99" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2", "--label-smoothing", "0.2", "--threads", "1"]) == 0
    config, results = _trained(run)
    assert config["label_smoothing"] == 0.2 and results["epochs_run"] == 2


def test_evaluate_and_export_of_a_run_use_its_ema_weights(tmp_path):
    run = tmp_path / "run"
    Runner(TrainConfig(**{**TINY, "export": True}, ema=0.9, save_dir=str(run))).fit()
    loaded = load_run(str(run), threads="1")
    assert loaded.weights == "ema"
    ema = _weights(run / "checkpoints/last/ema.pdparams")
    for key, tensor in loaded.network.state_dict().items():
        np.testing.assert_allclose(tensor.numpy(), ema[key], rtol=0, atol=1e-7, err_msg=key)
    assert load_run(str(run), threads="1", ema=False).weights == "training"
    result = evaluate_run(str(run), threads="1")
    assert result["weights"] == "ema"
    with open(run / "results.json") as fh:
        trained = json.load(fh)
    # The run's own last evaluation was of the EMA weights: evaluate RUN finds the same top-1.
    assert result["acc_top1"] == pytest.approx(trained["final_eval"]["acc_top1"], abs=1e-9)
    with open(run / "inference" / "hapi_runner.json") as fh:
        assert json.load(fh)["weights"] == "ema"


# --- folder datasets ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """A class-folder tree of real images (3 classes, 8 training and 3 validation images each, mixed formats)."""
    from folder_images import class_tree

    root = tmp_path_factory.mktemp("folder") / "images"
    class_tree(root, 8)
    class_tree(root, 3, split="val", offset=100, nested=False, junk=False)
    return root


@pytest.fixture
def folder_splits(image_tree, tmp_path):
    from hapi_runner.datasets import load_folder_splits

    return lambda: load_folder_splits(str(image_tree), image_size=28, channels=1, cache_root=str(tmp_path / "cache"))


@pytest.mark.parametrize("flag, value, field, expected", EACH, ids=[e[0] for e in EACH])
def test_each_flag_trains_on_a_folder_dataset(tmp_path, monkeypatch, image_tree, flag, value, field, expected):
    monkeypatch.setenv("HAPI_RUNNER_CACHE", str(tmp_path / "cache"))
    extra = ("--mixup", "0.4") if flag == "--mix-prob" else ()
    run = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(image_tree), "--image-size", "28", *FLAGS,
                 "--batch-size", "8", flag, value, *extra, "--save-dir", str(run)]) == 0
    config, results = _trained(run)
    assert config[field] == expected and config["dataset"] == "folder"
    assert np.isfinite(results["final_eval"]["loss"]) and results["epochs_run"] == 1
    if field == "ema":
        assert os.path.isfile(run / "checkpoints/last/ema.pdparams")
        assert load_run(str(run), threads="1").weights == "ema"


def test_folder_augmentations_change_only_training_batches(folder_splits):
    from hapi_runner.datasets.erasing import RandomErasing
    from hapi_runner.datasets.randaugment import RandAugment

    splits = folder_splits()
    images = splits.train.images[:8]
    splits.train.transform.set_epoch(3)
    plain = splits.train.transform(images)
    splits.train.transform.randaugment, splits.train.transform.erasing = RandAugment(10, op_prob=1.0), RandomErasing(1.0)
    splits.train.transform.set_epoch(3)
    augmented = splits.train.transform(images)
    assert augmented.shape == plain.shape == (8, 1, 28, 28) and augmented.dtype == np.float32
    assert not np.allclose(augmented, plain)
