"""bench/ is a harness, not a test: these only check that its pieces run and its bookkeeping is right (no timing asserted)."""

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


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_pipeline_workers_run(pipeline):
    assert workers.pipeline_hapi(count=256, batch_size=64, pipeline=pipeline)["images_per_second"] > 0
    assert workers.pipeline_paddle(count=256, batch_size=64)["images_per_second"] > 0


def test_meter_reports_other_load_as_a_number_of_cores():
    value, load = bench_run.Meter(busy=100.0, retries=0).once(lambda: 42)
    assert value == 42 and 0.0 <= load <= bench_run.CORES + 1


def test_torch_peers_are_optional():
    torch = pytest.importorskip("torch", reason="the PyTorch peers are optional")
    lenet, shape = workers._torch_models()["lenet"]
    assert lenet()(torch.zeros(2, *shape)).shape == (2, 10)
    assert workers.torch_train(model="lenet", batch_size=8, steps=1)["images_per_second"] > 0


def test_lenet_step_worker_reports_layers_and_a_training_speed():
    layers = bench_run.worker("lenet-step", mode="layers", batch_size=4, steps=1, threads=1)["layers_ms"]
    assert [name.split()[1] for name, _ in layers] == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D"]
    assert bench_run.worker("lenet-step", mode="dygraph", batch_size=4, steps=2, threads=1)["images_per_second"] > 0
