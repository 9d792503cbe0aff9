"""Training on your own images: ``--dataset folder`` through the config, the CLI, the Runner and the deploy tools."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from folder_images import ROOT, class_tree, fashion, truncated_png, write_image
from hapi_runner.config.checks import parse_size
from hapi_runner.cli.app import main
from hapi_runner.config.train_config import TrainConfig, from_mapping, load_config_file
from hapi_runner.datasets.registry import DATASETS, folder_datasets, synthetic_choices
from hapi_runner.errors import UsageError
from hapi_runner.paddle_compat import loss_of

TINY = ["--threads", "1", "--epochs", "1", "--image-size", "28", "--batch-size", "32", "--verbose", "0", "--no-visualdl",
        "--no-report"]


def train(*args):
    assert main(["--dataset", "folder", *TINY, *map(str, args)]) == 0


def results(run):
    return json.loads((Path(run) / "results.json").read_text())


@pytest.fixture
def tree(tmp_path):
    """train/ (mixed sizes, modes and formats, nested folders, junk files) and val/, three classes."""
    root = tmp_path / "images"
    class_tree(root, 10)
    class_tree(root, 3, split="val", offset=30, nested=False, junk=False)
    return root


# -- config and registry ------------------------------------------------------------------------------------

def test_folder_is_a_dataset_reading_a_folder_and_not_a_synthetic_shape():
    assert DATASETS["folder"].reads_data_dir
    assert "folder" in folder_datasets()
    assert "folder" not in synthetic_choices()


@pytest.mark.parametrize("text, expected", [("0", 0), ("500M", 500 << 20), ("20G", 20 << 30), ("1.5K", 1536),
                                            ("2gb", 2 << 30), (123, 123), (None, None)])
def test_cache_limit_reads_sizes(text, expected):
    assert parse_size("cache_limit", text) == expected


@pytest.mark.parametrize("text", ["lots", "-1", "G", "5 X", 1.5, -3])
def test_cache_limit_refuses_what_is_not_a_size(text):
    with pytest.raises(UsageError, match="cache_limit must be"):
        parse_size("cache_limit", text)


@pytest.mark.smoke
def test_a_config_file_and_the_python_api_take_the_folder_options(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: folder\ndata_dir: /data/photos\nchannels: 1\nnormalize_stats: data\n"
                    "cache_limit: 20G\nskip_bad_images: true\nclass_weights: auto\nimage_size: 64\n")
    config = from_mapping(load_config_file(str(path)))
    assert (config.channels, config.normalize_stats, config.cache_limit, config.image_size) == (1, "data", "20G", 64)
    assert TrainConfig(dataset="folder", data_dir="/data/photos").data_dir == "/data/photos"


@pytest.mark.parametrize("changes, phrase", [
    (dict(dataset="folder"), "needs --data-dir DIR"),
    (dict(channels=1), "--channels applies to --dataset folder"),
    (dict(skip_bad_images=True), "--skip-bad-images applies to --dataset folder"),
    (dict(dataset="folder", data_dir="d", channels=2), "channels '2' is not known; choose one of: 1, 3"),
    (dict(dataset="folder", data_dir="d", val_list="v.txt"), "--val-list needs --train-list"),
    (dict(dataset="folder", data_dir="d", eval_crop_pct=1.5), "eval_crop_pct"),
    (dict(class_weights="balanced"), "class_weights 'balanced' is not known"),
    (dict(dataset="folder", data_dir="d", normalize=False), "--no-normalize does not apply to --dataset folder"),
])
def test_bad_folder_settings_are_one_line(changes, phrase):
    with pytest.raises(UsageError, match=phrase):
        TrainConfig(**changes)


def test_load_dataset_and_make_loader_give_batches_of_the_asked_size(tree):
    from hapi_runner.datasets import load_dataset, make_loader

    data = load_dataset("folder", "train", data_dir=str(tree), image_size=32)
    images, labels = next(iter(make_loader(data, 8, shuffle=True, num_workers=0)))
    assert list(images.shape) == [8, 3, 32, 32] and list(labels.shape) == [8, 1]
    assert data.class_names == ["bag", "coat", "dress"] and len(data) == 30
    test = load_dataset("folder", "test", data_dir=str(tree), image_size=32, channels=1)
    assert test.sample_shape == [1, 32, 32] and len(test) == 9
    with pytest.raises(UsageError, match="image_size is an option of the folder dataset"):
        load_dataset("fashion-mnist-mini", "train", image_size=32)


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_0_decodes_the_folder_before_the_other_ranks_read_it(tree, monkeypatch, rank):
    from hapi_runner.datasets import folder

    calls = []
    real = folder.load_folder_splits

    def fake_on_main(fn):  # rank 0 runs fn; every rank leaves only once it has
        calls.append("enter")
        result = fn() if rank == 0 else True
        calls.append("leave")
        return result

    monkeypatch.setattr(folder, "on_main", fake_on_main)
    monkeypatch.setattr(folder, "load_folder_splits", lambda *a, **k: calls.append("load") or real(*a, **k))
    splits = folder.folder_splits_for(TrainConfig(dataset="folder", data_dir=str(tree), image_size=28))
    assert calls == (["enter", "leave", "load"] if rank else ["enter", "load", "leave"])  # decoded once per rank, 0 first
    assert len(splits.train) == 30


# -- class weights ------------------------------------------------------------------------------------------

def test_inverse_frequency_weights_have_mean_one():
    from hapi_runner.training.class_weights import inverse_frequency

    assert inverse_frequency([0] * 30 + [1] * 10, 2) == pytest.approx([0.5, 1.5])
    assert inverse_frequency([0, 0, 2], 3) == pytest.approx([0.6, 1.2, 1.2])


@pytest.mark.slow
def test_class_weights_auto_weights_a_3_to_1_folder_and_records_them(tmp_path):
    root = tmp_path / "images"
    class_tree(root, 15, classes=("common",), junk=False)
    class_tree(root, 5, classes=("rare",), offset=15, junk=False)
    class_tree(root, 2, classes=("common", "rare"), split="val", offset=20, junk=False)
    train("--data-dir", root, "--class-weights", "auto", "--no-export", "--save-dir", tmp_path / "run")
    assert results(tmp_path / "run")["class_weights"] == pytest.approx([0.5, 1.5])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["class_weights"] == "auto"


def test_class_weights_auto_on_a_built_in_dataset_reach_the_loss():
    from hapi_runner import Runner
    from hapi_runner.training.losses import SmoothedCrossEntropy

    runner = Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, threads="1",
                                class_weights="auto", export=False, visualdl=False))
    counts = np.bincount(runner.train_data.labels, minlength=10)
    expected = (1 / counts) * 10 / (1 / counts).sum()
    assert runner.class_weights == pytest.approx(expected)
    loss = loss_of(runner.model)
    assert isinstance(loss, SmoothedCrossEntropy)
    np.testing.assert_allclose(loss.class_weight.numpy(), expected, rtol=1e-6)


# -- a folder run, end to end -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.smoke
def test_a_folder_run_trains_resumes_evaluates_exports_and_predicts(tree, tmp_path, capsys):
    run = tmp_path / "run"
    train("--data-dir", tree, "--save-dir", run)
    out = capsys.readouterr().out
    first = next(line for line in out.splitlines() if line.startswith("hapi_runner: folder"))
    assert "3 classes, 30 training and 9 validation images" in first
    assert results(run)["epochs_run"] == 1
    assert main(["--resume", str(run), "--epochs", "2", "--threads", "1", "--verbose", "0"]) == 0
    assert results(run)["resumed_from_epoch"] == 1 and results(run)["epochs_run"] == 2
    assert main(["evaluate", str(run), "--threads", "1"]) == 0
    evaluation = json.loads(next(run.glob("evaluation_folder_epoch2_dygraph.json")).read_text())
    assert evaluation["num_samples"] == 9
    assert main(["export", str(run)]) == 0
    sidecar = json.loads((run / "inference" / "hapi_runner.json").read_text())
    assert sidecar["image_preprocessing"]["resize_short"] == 32 and sidecar["image_preprocessing"]["crop"] == 28
    assert sidecar["class_names"] == ["bag", "coat", "dress"]
    capsys.readouterr()
    assert main(["predict", str(run), str(tree / "val" / "coat")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(tree))]
    assert len(lines) == 3


@pytest.mark.slow
@pytest.mark.smoke
def test_predict_prepares_an_image_exactly_as_evaluation_did(tree, tmp_path):
    from hapi_runner.deploy import InferenceModel
    from hapi_runner.deploy.predict import decode_for
    from hapi_runner.deploy.tasks import eval_dataset, load_run

    run = tmp_path / "run"
    train("--data-dir", tree, "--save-dir", run, "--channels", "3")
    loaded = load_run(str(run), threads="1")
    data = eval_dataset(loaded, None, None, download=False)
    model = InferenceModel(str(run / "inference"), threads=1)
    for index in range(len(data)):  # mixed sizes, modes and formats: each is resized and cropped
        expected = data.transform([data.images[index]])
        image = decode_for(data.paths[index], model.sidecar["image_preprocessing"])
        np.testing.assert_allclose(model.preprocess([image]), expected, atol=1e-6)
    # A picture handed over at another size is brought to evaluation's short side first.
    big = np.asarray(Image.open(data.paths[0]).convert("RGB").resize((80, 64)))
    assert model.preprocess([big]).shape == (1, 3, 28, 28)


@pytest.mark.slow
def test_skipped_bad_images_are_listed_in_the_run_folder(tree, tmp_path):
    truncated_png(tree / "train" / "bag" / "broken.png", fashion(1)[0][0])
    train("--data-dir", tree, "--skip-bad-images", "--no-export", "--save-dir", tmp_path / "run")
    listed = (tmp_path / "run" / "bad_images.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith(str(tree / "train" / "bag" / "broken.png") + "\t")


@pytest.mark.slow
def test_a_resume_on_a_folder_whose_classes_were_renamed_is_refused(tree, tmp_path, capsys):
    run = tmp_path / "run"
    train("--data-dir", tree, "--no-export", "--save-dir", run)
    for split in ("train", "val"):
        (tree / split / "dress").rename(tree / split / "shirt")
    assert main(["--resume", str(run), "--epochs", "2", "--threads", "1", "--verbose", "0"]) == 2
    assert "checkpoint is for class names 'bag', 'coat', 'dress', this run is 'bag', 'coat', 'shirt'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_list_trains_and_a_missing_validation_folder_is_a_stratified_split(tmp_path, capsys):
    grey, labels = fashion(40)
    names = ["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    lines = ["path,label"]
    for k, (image, label) in enumerate(zip(grey, labels)):
        write_image(tmp_path / "pics" / f"p{k}.png", image, ((28, 28), "L", "png"))
        lines.append(f"pics/p{k}.png,{names[label]}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    train("--data-dir", tmp_path, "--train-list", tmp_path / "train.csv", "--channels", "1", "--no-export",
          "--save-dir", tmp_path / "run")
    out = capsys.readouterr().out
    assert "validation: a stratified 10% of" in out


# -- the built-in dataset, written out as image files -------------------------------------------------------

def write_embedded_as_folders(root):
    """The embedded 6000 + 1000 images as PNG files, train/ and test/ by class, at their own 28x28."""
    with np.load(ROOT / "hapi_runner" / "data" / "fashion_mnist_mini.npz") as data:
        for split in ("train", "test"):
            for k, (image, label) in enumerate(zip(data[f"x_{split}"], data[f"y_{split}"])):
                path = root / split / f"class{int(label)}" / f"{k:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image[0], "L").save(path)


@pytest.mark.slow
def test_the_embedded_set_as_a_folder_reaches_the_built_in_accuracy(tmp_path):
    """Same network, recipe and seed; the folder fed at the images' own size (no crop, no resize) and its own statistics."""
    write_embedded_as_folders(tmp_path / "fm")
    recipe = ["--threads", "1", "--epochs", "3", "--lr-schedule", "cosine", "--verbose", "0", "--no-export", "--no-visualdl",
              "--no-report"]
    assert main(["--dataset", "fashion-mnist-mini", *recipe, "--save-dir", str(tmp_path / "builtin")]) == 0
    assert main(["--dataset", "folder", "--data-dir", str(tmp_path / "fm"), "--image-size", "28", "--channels", "1",
                 "--normalize-stats", "data", "--no-augment", "--eval-crop-pct", "1.0", *recipe,
                 "--save-dir", str(tmp_path / "folder")]) == 0
    builtin = results(tmp_path / "builtin")["final_eval"]["acc_top1"]
    folder = results(tmp_path / "folder")["final_eval"]["acc_top1"]
    assert builtin > 0.75
    assert abs(folder - builtin) <= 0.01, (folder, builtin)
