"""bench/ is a harness, not a test: these check that its pieces run, give figures in a sane range, and that its arithmetic is right."""

import math

import pytest

from bench import run as bench_run
from bench import workers
from bench.report import update_section


def test_time_to_target_counts_training_seconds_up_to_the_first_epoch_at_90_percent():
    rows = [{"epoch": "1", "seconds": "10", "eval_acc_top1": "0.85"}, {"epoch": "2", "seconds": "11", "eval_acc_top1": "0.901"},
            {"epoch": "3", "seconds": "12", "eval_acc_top1": "0.89"}]
    assert bench_run._time_to_target(rows) == (2, 21.0, 0.901, 33.0)
    assert bench_run._time_to_target(rows[:1]) == (None, None, 0.85, 10.0)


def test_tables_and_spread():
    assert bench_run.spread([9.0, 10.0, 11.0]) == "20%" and bench_run.spread([5.0]) == "-"
    assert bench_run.table(["a", "b"], [[1, 2]]) == "| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_update_section_rewrites_one_marked_section(tmp_path):
    path = tmp_path / "b.md"
    path.write_text("# B\n\nintro\n<!-- x:begin -->\nold\n<!-- x:end -->\ntail\n")
    update_section(str(path), "x", "new")
    update_section(str(path), "y", "added")
    text = path.read_text()
    assert "<!-- x:begin -->\nnew\n<!-- x:end -->\ntail" in text and "old" not in text
    assert text.endswith("## y\n\n<!-- y:begin -->\nadded\n<!-- y:end -->\n")


def sane_speed(result):
    """True for an images-per-second figure a CPU can give: finite, above 1 and below 10^8."""
    value = result["images_per_second"]
    return math.isfinite(value) and 1 < value < 1e8


class FakeClock:
    """``time`` for bench.workers: each ``perf_counter()`` call returns the next of ``ticks``."""

    def __init__(self, *ticks):
        self.ticks = iter(ticks)

    def perf_counter(self):
        return next(self.ticks)


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_pipeline_workers_give_a_sane_speed(pipeline):
    assert sane_speed(workers.pipeline_hapi(count=256, batch_size=64, pipeline=pipeline))
    assert sane_speed(workers.pipeline_paddle(count=256, batch_size=64))


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_pipeline_speed_counts_the_batches_after_the_two_warm_up_ones(monkeypatch, pipeline):
    # 256 images in batches of 64: batches 3 and 4 (128 images) are timed, here over 0.5 s.
    monkeypatch.setattr(workers, "time", FakeClock(10.0, 10.5))
    assert workers.pipeline_hapi(count=256, batch_size=64, pipeline=pipeline) == {"images_per_second": 256.0}


def test_lenet_step_speed_is_steps_times_batch_over_the_timed_seconds(monkeypatch):
    monkeypatch.setattr(workers, "time", FakeClock(3.0, 5.0))  # the two timed steps take 2 s
    assert workers.lenet_step(mode="dygraph", batch_size=4, steps=2) == {"images_per_second": 4.0}


def test_meter_reports_other_load_as_a_number_of_cores():
    value, load = bench_run.Meter(busy=100.0, retries=0).once(lambda: 42)
    assert value == 42 and 0.0 <= load <= bench_run.CORES + 1


def test_torch_peers_are_optional():
    torch = pytest.importorskip("torch", reason="the PyTorch peers are optional")
    lenet, shape = workers._torch_models()["lenet"]
    assert lenet()(torch.zeros(2, *shape)).shape == (2, 10)
    assert sane_speed(workers.torch_train(model="lenet", batch_size=8, steps=1))


def test_lenet_step_worker_reports_layers_and_a_training_speed():
    layers = bench_run.worker("lenet-step", mode="layers", batch_size=4, steps=1, threads=1)["layers_ms"]
    assert [name.split()[1] for name, _ in layers] == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D"]
    assert sane_speed(bench_run.worker("lenet-step", mode="dygraph", batch_size=4, steps=2, threads=1))


def test_resnet18_table_reports_each_epoch_and_judges_the_target():
    rows = [{"epoch": "1", "lr": "0.1", "train_acc_top1": "0.8", "eval_acc_top1": "0.9", "seconds": "1800", "images_per_second": "33.3"},
            {"epoch": "2", "lr": "0.0", "train_acc_top1": "0.93", "eval_acc_top1": "0.9412", "seconds": "1860", "images_per_second": "32.3"}]
    results = {"final_eval": {"acc_top1": 0.9412}, "total_seconds": 2 * 3600, "train_seconds": 3660, "epochs_run": 2}
    text = bench_run.resnet18_table(results, rows, "python train.py X", "quiet")
    assert "| 2 | 0.0000 | 0.9300 | 0.9412 | 31.0 | 32.3 |" in text
    assert "**not met: 0.9412 in 2.00 h, 0.88 points short**" in text and "`python train.py X`" in text and "; quiet." in text
    slow = dict(results, final_eval={"acc_top1": 0.951}, total_seconds=3 * 3600)
    assert "**not met: 0.9510, but in 3.00 h, over the 2.5 h**" in bench_run.resnet18_table(slow, rows, "c", "quiet")
    assert "**met**" in bench_run.resnet18_table(dict(results, final_eval={"acc_top1": 0.951}), rows, "c", "quiet")
    assert "resnet18" not in [n for n in bench_run.BENCHMARKS if n not in bench_run.ONLY_WHEN_NAMED]


def test_first_epochs_writes_the_folder_from_idx_files_and_tabulates(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from bench import first_epochs
    from datafiles import write_mnist_files

    source = tmp_path / "idx"
    source.mkdir()
    files = write_mnist_files(str(source), n_train=60, n_test=20)
    monkeypatch.setattr(first_epochs, "PER_CLASS", 3)
    monkeypatch.setattr(first_epochs, "VAL_IMAGES", 12)
    folder = first_epochs.write_folder(str(source), str(tmp_path / "out"))
    train = sorted((tmp_path / "out" / "train").rglob("*.png"))
    assert len(train) == 30 and len(list((tmp_path / "out" / "val").rglob("*.png"))) == 12
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == sorted(first_epochs.CLASSES)
    first_val = tmp_path / "out" / "val" / first_epochs.CLASSES[int(files["y_test"][0])] / "00000.png"
    np.testing.assert_array_equal(np.asarray(Image.open(first_val)), files["x_test"][0, 0])
    assert folder == str(tmp_path / "out")
    results = {"defaults": {0: (0.8, 5.0, ""), 1: (0.78, 6.0, "")}, "none": {0: (0.7, 5.0, ""), 1: (0.72, 5.0, "")}}
    lines = first_epochs.table(results, [0, 1]).splitlines()
    assert lines[2] == "| defaults | (none) | 80.0 | 78.0 | 79.0 | - | 5.5 |"
    assert lines[3].startswith("| none | `--no-zero-init-residual") and lines[3].endswith("| 70.0 | 72.0 | 71.0 | -8.0 | 5.0 |")


def test_finetune_writes_the_digits_as_class_folders(tmp_path):
    pytest.importorskip("sklearn")
    from PIL import Image

    from bench.finetune import write_digits

    write_digits(str(tmp_path), 3)
    train, val = tmp_path / "train", tmp_path / "val"
    assert sorted(p.name for p in train.iterdir()) == [f"digit_{d}" for d in range(10)]
    assert all(len(list((train / f"digit_{d}").iterdir())) == 3 for d in range(10))
    assert sum(len(list(folder.iterdir())) for folder in val.iterdir()) == 1797 - 30
    first = next((train / "digit_0").iterdir())
    with Image.open(first) as image:
        assert image.size == (28, 28) and image.mode == "L" and image.getextrema()[1] > 200  # ink reaches near white
