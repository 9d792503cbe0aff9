"""The command line: exit codes, one-line errors, listings, summary, and the train.py and -m entry points."""

import json
import signal
import os
import subprocess
import sys

import pytest

from hapi_runner import TrainConfig
from hapi_runner.cli.app import main

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("hapi-runner: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, match", [
    (["--model", "resnet51"], "Did you mean 'resnet50'"),
    (["--dataset", "imagenet"], "dataset 'imagenet' is not known; choose one of"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--lr", "-1"], "lr must be > 0.0"),
    (["--lr", "abc"], "argument --lr: must be a number such as 0.01, or auto; got 'abc'"),
    (["--epochs", "two"], "invalid int value"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--device", "npu"], "device 'npu' is not valid"),
    (["--threads", "many"], "threads 'many' is not valid"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, match):
    code, _, err = run_main(capsys, argv)
    assert code == 2
    assert match in one_error_line(err)


def test_unwritable_save_dir_is_refused_before_anything_runs(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, _, err = run_main(capsys, ["--save-dir", str(blocker / "run"), "--epochs", "1"])
    assert code == 2
    assert "is a file, not a folder" in one_error_line(err)
    assert blocker.read_text() == "keep me"


def test_finished_run_is_not_overwritten(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text('{"kept": true}')
    code, _, err = run_main(capsys, ["--save-dir", str(run)])
    assert code == 2
    assert "--overwrite" in one_error_line(err)
    assert json.loads((run / "results.json").read_text()) == {"kept": True}


def test_missing_data_files_exit_1_naming_them(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_main(capsys, ["--dataset", "cifar10", "--data-dir", str(empty), "--no-download", "--save-dir", str(tmp_path / "r")])
    assert code == 1
    line = one_error_line(err)
    assert "cifar-10-python.tar.gz not found in" in line and str(empty) in line and "--data-dir" in line
    assert not (tmp_path / "r").exists()


def test_corrupt_data_file_exit_1(capsys, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    code, _, err = run_main(capsys, ["--dataset", "cifar10", "--data-dir", str(folder), "--no-download", "--save-dir", str(tmp_path / "r")])
    assert code == 1
    assert "cifar-10-python.tar.gz" in one_error_line(err)


def test_gpu_on_a_cpu_build_says_how_to_install(capsys, tmp_path):
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count():
        pytest.skip("a GPU is visible here")
    code, _, err = run_main(capsys, ["--gpu", "--save-dir", str(tmp_path / "r")])
    assert code == 1
    line = one_error_line(err)
    assert "paddlepaddle-gpu" in line or "none is visible" in line


def test_debug_shows_the_traceback(capsys):
    code, _, err = run_main(capsys, ["--epochs", "0", "--debug"])
    assert code == 2 and "Traceback" in err


def test_list_models_and_datasets(capsys):
    code, out, _ = run_main(capsys, ["--list-models"])
    assert code == 0
    names = [l.split()[0] for l in out.splitlines()]
    for name in ("lenet", "vgg11", "vgg16_bn", "vgg19", "resnet18", "resnet152", "mobilenet_v1", "mobilenet_v2"):
        assert name in names
    code, out, _ = run_main(capsys, ["--list-datasets"])
    assert {"mnist", "fashion-mnist", "fashion-mnist-mini", "cifar10", "cifar100", "synthetic"} <= {l.split()[0] for l in out.splitlines()}


@pytest.mark.parametrize("model, dataset, params, macs", [
    ("lenet", "mnist", 61_610, None),
    ("resnet50", "cifar10", 23_581_642, 83_889_152),
])
def test_summary_figures(capsys, model, dataset, params, macs):
    code, out, _ = run_main(capsys, ["summary", "--model", model, "--dataset", dataset, "--json"])
    assert code == 0
    report = json.loads(out)
    assert report["total_params"] == params
    if macs:
        # paddle.flops' counting rules give 83.9 M multiply-adds for resnet50 at 3x32x32.
        assert report["macs"] == macs


def test_summary_prints_the_layer_table(capsys):
    code, out, _ = run_main(capsys, ["summary", "--model", "vgg11", "--dataset", "mnist"])
    assert code == 0
    assert "Total params" in out and "multiply-adds" in out and "1x32x32" in out


@pytest.mark.parametrize("entry", [["train.py"], ["-m", "hapi_runner", "train"]])
@pytest.mark.slow
def test_entry_points_train_on_synthetic_data(tmp_path, entry):
    run = tmp_path / "run"
    cmd = [sys.executable, *entry, "--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64",
           "--epochs", "1", "--batch-size", "32", "--save-dir", str(run), "--verbose", "0", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "synthetic data shaped like mnist" in proc.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["synthetic"] is True and results["epochs_run"] == 1


@pytest.mark.parametrize("argv, dataset", [
    (["--data-dir", "{tmp}"], "fashion-mnist-mini"),
    (["--dataset", "synthetic", "--data-dir", "{tmp}/nowhere"], "synthetic"),
    (["--data-dir", "{tmp}/nowhere"], "fashion-mnist-mini"),
])
def test_a_data_dir_the_dataset_does_not_read_is_refused(capsys, tmp_path, argv, dataset):
    from hapi_runner.datasets.registry import DATASETS

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_main(capsys, [*argv, "--save-dir", str(tmp_path / "run"), "--epochs", "1"])
    assert code == 2
    line = one_error_line(err)
    readers = sorted(name for name, spec in DATASETS.items() if spec.format not in ("embedded", "synthetic"))
    assert f"is not read by dataset '{dataset}'" in line and ", ".join(readers) in line
    assert not (tmp_path / "run").exists()


def test_the_datasets_that_read_a_folder_come_from_the_registry(monkeypatch):
    import dataclasses

    from hapi_runner.datasets import registry

    assert registry.folder_datasets() == ["cifar10", "cifar100", "fashion-mnist", "folder", "mnist"]
    monkeypatch.setitem(registry.DATASETS, "mine", dataclasses.replace(registry.DATASETS["mnist"], name="mine", format="folder"))
    assert "mine" in registry.folder_datasets()


LEAN_RUN = ["--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64", "--batch-size", "32",
            "--verbose", "0", "--threads", "1", "--no-export", "--no-visualdl", "--no-report"]


def stop_in_epoch(monkeypatch, epoch):
    """Ctrl-C, as GracefulStop sees it, at the first batch of ``epoch``: that epoch never ends, the one before is checkpointed."""
    from hapi_runner.callbacks import GracefulStop

    real = GracefulStop.on_train_batch_end

    def on_train_batch_end(self, step, logs=None):
        if self.epoch == epoch:
            self.signum = signal.SIGINT
        return real(self, step, logs)

    monkeypatch.setattr(GracefulStop, "on_train_batch_end", on_train_batch_end)
    return lambda: monkeypatch.setattr(GracefulStop, "on_train_batch_end", real)


@pytest.mark.slow
@pytest.mark.parametrize("epochs, stop_at", [(3, 2), (7, 6)])  # stopped before and after the default of 5 epochs
def test_the_printed_resume_command_finishes_the_run(capsys, tmp_path, monkeypatch, epochs, stop_at):
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train.py"])
    undo = stop_in_epoch(monkeypatch, stop_at)
    code, _, err = run_main(capsys, [*LEAN_RUN, "--epochs", str(epochs), "--lr", "0.02", "--save-dir", str(run)])
    assert code == 130
    command = one_error_line(err).split("continue with: ", 1)[1].split()[2:]  # copied as printed, after "python train.py"
    assert command == ["--resume", str(run)]
    undo()
    code, out, err = run_main(capsys, command)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["epochs"], config["lr"], config["dataset"]) == (epochs, 0.02, "synthetic")
    assert json.loads((run / "results.json").read_text())["epochs_run"] == epochs
    assert os.path.isdir(run / "checkpoints" / f"epoch_{epochs}")


def test_flags_given_with_resume_override_the_runs_config(tmp_path):
    from hapi_runner.config.train_config import resolve_layers

    run = tmp_path / "run"
    (run / "checkpoints" / "epoch_1").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**TrainConfig(epochs=9, lr=0.2, model="resnet18").to_dict(),
                                                 "save_dir": "/where/it/was/trained"}))
    for where in ("", "checkpoints", "checkpoints/epoch_1"):
        config = resolve_layers([({"resume": str(run / where), "epochs": 12}, "command line")])
        assert (config.epochs, config.lr, config.model) == (12, 0.2, "resnet18")
        assert os.path.realpath(config.save_dir) == os.path.realpath(run)
    latest = TrainConfig.for_resume(save_dir=str(run), log_freq=3)
    assert (latest.epochs, latest.log_freq, latest.resume) == (9, 3, "latest")


def test_resume_latest_reads_the_newest_run_of_the_model_and_dataset(tmp_path):
    root = tmp_path / "out"
    for number, epochs in ((1, 4), (2, 8), (3, 6)):
        run = root / "lenet-fashion-mnist-mini" / f"run_00{number}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(TrainConfig(epochs=epochs).to_dict()))
        if number < 3:  # run_003 never reached a checkpoint
            (run / "checkpoints" / "epoch_1").mkdir(parents=True)
    config = TrainConfig.for_resume(output_root=str(root))
    assert config.epochs == 8 and config.save_dir.endswith("run_002")


def test_summary_of_a_folder_reads_its_classes_and_channels(capsys, tmp_path):
    from folder_images import class_tree

    class_tree(tmp_path / "images", 1, classes=("bag", "coat", "dress", "shirt"), junk=False)
    argv = ["summary", "--model", "lenet", "--dataset", "folder", "--data-dir", str(tmp_path / "images"), "--channels", "1",
            "--image-size", "28", "--json"]
    code, out, _ = run_main(capsys, argv)
    report = json.loads(out)
    assert code == 0 and report["input_shape"] == [1, 28, 28]
    assert report["total_params"] == 61_610 - 6 * 85  # LeNet's last layer: 84 x 4 + 4 in place of 84 x 10 + 10
    code, _, err = run_main(capsys, argv[:5] + ["--image-size", "28"])
    assert code == 2 and "needs --data-dir DIR" in err
