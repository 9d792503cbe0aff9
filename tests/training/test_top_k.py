"""Top-5 is shown only where it can be below 1 (more than five classes), and compare names its rows apart."""

import numpy as np
import pytest

from hapi_runner.cli.app import _accuracies
from hapi_runner.deploy.scoring import metrics_from_logits
from hapi_runner.report.compare import format_comparison
from hapi_runner.training.metrics import shows_top_k
from hapi_runner.training.runner import _accuracy


@pytest.mark.parametrize("classes, shown", [(2, False), (5, False), (6, True), (10, True)])
def test_top_5_is_measured_only_with_more_than_five_classes(classes, shown):
    assert shows_top_k(classes) is shown
    assert _accuracy(classes).name() == (["acc_top1", "acc_top5"] if shown else ["acc_top1"])
    rng = np.random.default_rng(0)
    labels = np.arange(40) % classes
    logits = rng.standard_normal((40, classes))
    result = metrics_from_logits(logits, labels, classes)
    top5 = np.mean([label in np.argsort(-row)[:5] for row, label in zip(logits, labels)])
    assert result["acc_top5"] == (pytest.approx(top5) if shown else None)
    assert result["acc_top1"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))


def test_the_done_line_leaves_out_a_top_5_that_was_not_measured():
    assert _accuracies({"acc_top1": 0.5, "acc_top5": None}) == "top-1 0.5000"
    assert _accuracies({"acc_top1": 0.5, "acc_top5": 0.75}) == "top-1 0.5000, top-5 0.7500"


def _run(label, epochs, top5):
    return {"label": label, "model": "lenet", "dataset": "folder", "epochs_run": epochs, "epochs": epochs, "train_seconds": 1.0,
            "final": {"loss": 0.5, "acc_top1": 0.8, "acc_top5": top5}, "best": {"epoch": 1, "acc_top1": 0.8, "acc_top5": top5, "loss": 0.5}}


def test_compare_names_each_row_once_and_drops_top_5_of_few_classes():
    result = {"runs": [_run("a", 2, None), _run("b", 3, None)], "differing": {"epochs": [2, 3]}, "curves": "c.png"}
    names = [line.split("  ")[0] for line in format_comparison(result).splitlines()[:-1]]
    assert len(names) == len(set(names)), names
    assert "epochs" in names and "epochs run/set" in names and not any("top-5" in n for n in names)
    result["runs"][1] = _run("b", 3, 0.9)
    assert "final top-5" in format_comparison(result)


def test_a_metric_an_earlier_fit_left_in_hapis_logs_is_not_recorded():
    """hapi's _run_one_epoch keeps its logs dict across fits: a 10-class run's acc_top5 is still there in the next."""
    from hapi_runner.training.log_values import metric_logs

    logs = {"loss": [0.5], "acc_top1": 0.8, "acc_top5": 0.9, "step": 3, "batch_size": 8}
    assert metric_logs(logs, ["loss", "acc_top1"]) == {"loss": 0.5, "acc_top1": 0.8}
    assert metric_logs(logs) == {"loss": 0.5, "acc_top1": 0.8, "acc_top5": 0.9}
