"""The first lines of a run: the parameter count, the resolved data configuration, and what a folder's training does."""

import paddle
import pytest

from folder_images import class_tree
from hapi_runner.datasets import load_folder_splits
from hapi_runner.training.startup import describe_parameters, parameter_count


@pytest.mark.parametrize("augment, training", [
    (True, "training: random resized crop and flip;"),
    (False, "training: no augmentation, short side 36, centre 32x32 as in evaluation;"),
])
def test_a_folders_note_says_what_training_really_does(tmp_path, augment, training):
    class_tree(tmp_path, 4, junk=False)
    note = load_folder_splits(str(tmp_path), image_size=32, channels=1, val_split=0.25, augment=augment).notes[0]
    assert training in note
    assert ("random resized" in note) == augment
    assert "evaluation: short side 36, centre 32x32, crop_pct 0.875, bilinear" in note and "mean/std 0." in note


def test_parameter_count_leaves_out_running_statistics_and_counts_frozen_ones_apart():
    network = paddle.nn.Sequential(paddle.nn.Conv2D(1, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Linear(4, 3))
    assert parameter_count(network) == (36 + 4 + 8 + 12 + 3,) * 2  # conv 4x1x3x3 + bias, BN scale + shift, fc 4x3 + 3
    assert describe_parameters(network) == "63 parameters"
    network[2].weight.stop_gradient = True
    assert parameter_count(network) == (63, 51)
    assert describe_parameters(network) == "63 parameters, 51 trainable"
    assert describe_parameters(paddle.vision.models.resnet18(num_classes=10)) == "11.18M parameters"


def test_a_runs_startup_lines_name_parameters_and_data(tmp_path, capsys):
    from hapi_runner import Runner, TrainConfig

    Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=32, epochs=1, threads=1, verbose=0,
                       save_dir=str(tmp_path), report=False, export=False, visualdl=False)).fit()
    out = capsys.readouterr().out
    assert "lenet (61.6k parameters) on synthetic data shaped like mnist" in out
    assert "hapi_runner: data: 1x28x28 per image, mean/std 0." in out and "training augmentation: none" in out
