"""hapi_runner.training.lr_find: the sweep's rules, its suggestions, the exact restore, ``--lr auto`` and ``lr-find``."""

import json
import math
import random

import numpy as np
import paddle
import pytest

from conftest import tiny_config
from hapi_runner.cli import main
from hapi_runner.errors import UsageError
from hapi_runner.training.lr_find import (LRSweep, _SweepOver, check_sweep, find_lr, steepest_rate, sweep_rate,
                                          valley_rate)
from hapi_runner.training.runner import Runner


class _Rate:
    last_lr = None


def _sweep(steps=20, **kwargs):
    return LRSweep(_Rate(), steps, 1e-4, 1.0, log_every=0, **kwargs)


def test_the_rates_climb_exponentially_from_start_to_end():
    rates = [sweep_rate(i, 5, 1e-4, 1.0) for i in range(5)]
    np.testing.assert_allclose(rates, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_a_non_finite_loss_ends_the_sweep_and_is_not_recorded(bad):
    sweep = _sweep()
    for step, loss in enumerate([2.0, 1.9, 1.8]):
        sweep.record(step, loss)
    with pytest.raises(_SweepOver):
        sweep.record(3, bad)
    assert sweep.losses == [2.0, 1.9, 1.8]
    assert f"the loss became {bad}" in sweep.stop_reason


def test_the_sweep_stops_when_the_smoothed_loss_passes_four_times_its_lowest():
    sweep = _sweep(beta=0.0)  # no smoothing: the rule is read off the raw losses
    for step, loss in enumerate([2.0, 1.0, 3.9]):
        sweep.record(step, loss)
    with pytest.raises(_SweepOver):
        sweep.record(3, 4.1)
    assert "diverged" in sweep.stop_reason and len(sweep.losses) == 4


def test_the_smoothed_loss_is_a_bias_corrected_moving_average():
    sweep = _sweep(beta=0.5)
    for step, loss in enumerate([4.0, 2.0]):
        sweep.record(step, loss)
    # (0.5 * 4) / (1 - 0.5) = 4, then (0.5 * 2 + 0.5 * 2) / (1 - 0.25) = 8/3
    np.testing.assert_allclose(sweep.smoothed, [4.0, 8 / 3])


def test_the_sweep_ends_at_its_last_step():
    sweep = _sweep(steps=3, beta=0.0)
    sweep.record(0, 1.0)
    sweep.record(1, 1.0)
    with pytest.raises(_SweepOver):
        sweep.record(2, 1.0)
    assert sweep.stop_reason == "the last rate of the sweep was reached"


def test_the_suggestions_on_a_curve_with_a_known_shape():
    """A loss that falls along a logistic in log10(rate), steepest at 1e-3, then rises: both rates fall inside the descent."""
    lrs = list(np.logspace(-6, 0, 61))
    x = np.log10(lrs)
    loss = list(2.0 - 1.5 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, 10 * (x + 1) ** 2, 0))
    assert steepest_rate(lrs, loss) == pytest.approx(1e-3)
    # The descent starts where a tenth of the drop is made (logistic at 0.1: x = -3 - ln(9)/3 = -3.73) and ends at
    # the minimum (x = -0.98); the valley is half way, in log-rate: 10^-2.36, on this grid of tenths 10^-2.4.
    assert math.log10(valley_rate(lrs, loss)) == pytest.approx(-2.4, abs=0.05)


def test_too_few_points_suggest_nothing():
    assert steepest_rate([1e-3, 1e-2], [1.0, 0.5]) is None and valley_rate([1e-3, 1e-2], [1.0, 0.5]) is None


@pytest.mark.parametrize("start,end,steps,match", [(0.0, 1.0, 10, "start_lr"), (1.0, 0.1, 10, "must be above start_lr"),
                                                   (1e-5, 1.0, 2, "steps")])
def test_bad_sweep_arguments_are_refused(start, end, steps, match):
    with pytest.raises(UsageError, match=match):
        check_sweep(start, end, steps)


def _state(runner):
    """``(weights, optimizer accumulators)``, the latter keyed by structured name: two networks name parameters apart."""
    names = sorted(((p.name, name) for name, p in runner.network.named_parameters()), key=lambda n: -len(n[0]))
    optimizer = {}
    for key, value in runner.optimizer.state_dict().items():
        if hasattr(value, "numpy"):
            own, structured = next((n, s) for n, s in names if key.startswith(n + "_"))
            optimizer[structured + key[len(own):]] = value.numpy().copy()
    return {k: v.numpy().copy() for k, v in runner.network.state_dict().items()}, optimizer


@pytest.mark.parametrize("optimizer,end_lr", [("adam", 10.0), ("momentum", 1e30)])
def test_after_the_sweep_training_is_exactly_as_without_it(data_root, tmp_path, optimizer, end_lr):
    """Weights, optimizer accumulators (created lazily by Paddle), schedule and every RNG: the run that follows is the same.

    ``end_lr`` 1e30 without the divergence rule drives the loss to NaN, which must end the sweep and still restore everything.
    """
    def build():
        return Runner(tiny_config(data_root, tmp_path, batch_size=4, optimizer=optimizer, lr_schedule="cosine",
                                  model="lenet", dataset="mnist"))

    swept = build()
    before, python_rng = _state(swept), random.getstate()
    finding = find_lr(swept, end_lr=end_lr, steps=12, log_every=0, diverge=None if end_lr > 1e3 else 4.0)
    assert random.getstate() == python_rng  # the Runner does not seed Python's generator: compared in place
    assert finding.steps >= 3
    assert ("became nan" in finding.stop_reason) == (end_lr > 1e3), finding.stop_reason
    np.testing.assert_equal(_state(swept)[0], before[0])
    draws = (paddle.rand([3]).numpy(), np.random.rand())
    swept_lr = swept.lr()
    swept.model.fit(swept.train_loader, epochs=1, verbose=0)

    plain = build()
    np.testing.assert_equal(draws[0], paddle.rand([3]).numpy())
    assert np.random.rand() == draws[1]
    assert plain.lr() == swept_lr
    plain.model.fit(plain.train_loader, epochs=1, verbose=0)
    (w_swept, o_swept), (w_plain, o_plain) = _state(swept), _state(plain)
    for key in w_plain:
        np.testing.assert_array_equal(w_swept[key], w_plain[key])
    assert sorted(o_swept) == sorted(o_plain)
    for key in o_plain:
        np.testing.assert_array_equal(o_swept[key], o_plain[key])


def test_lr_auto_trains_at_the_valley_and_records_it(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-dir", str(data_root / "mnist"), "--no-download", "--batch-size", "4",
                 "--epochs", "1", "--lr", "auto", "--save-dir", str(run), "--verbose", "0", "--no-report", "--no-export"])
    assert code == 0
    finding = json.loads((run / "lr_find.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == finding["suggestion"] == config["lr_find"]["lr"]
    assert math.isfinite(config["lr"]) and (run / "lr_find.png").stat().st_size > 1000
    assert "suggested learning rate" in capsys.readouterr().out


def test_lr_find_prints_both_rates_and_the_train_command(data_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["lr-find", "--dataset", "mnist", "--data-dir", str(data_root / "mnist"), "--no-download", "--batch-size", "4",
                 "--epochs", "2", "--save-dir", str(out), "--steps", "12", "--end-lr", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    finding = json.loads((out / "lr_find.json").read_text())
    assert f"{finding['valley']:.3g}" in printed and f"{finding['steepest']:.3g}" in printed
    command = next(line for line in printed.splitlines() if line.startswith("train with: "))
    assert "--epochs 2" in command and f"--lr {finding['suggestion']:.3g}" in command
    assert (out / "lr_find.png").exists()


def test_lr_auto_cannot_resume(tmp_path):
    with pytest.raises(UsageError, match="drop --lr auto"):
        tiny_config(tmp_path, tmp_path, dataset="fashion-mnist-mini", lr="auto", resume=str(tmp_path))
