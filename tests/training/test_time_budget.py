"""hapi_runner.training.time_budget: durations, the plan's arithmetic, and a planned run (on a made-up clock) and its resume."""

import json

import pytest

from conftest import tiny_config
from hapi_runner.config.checks import parse_duration
from hapi_runner.errors import UsageError
from hapi_runner.training import time_budget
from hapi_runner.training.runner import Runner
from hapi_runner.training.time_budget import RESERVE, plan_epochs


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400), ("45", 45), (30, 30), (" 2M ", 120)])
def test_durations_read_with_their_unit(text, seconds):
    assert parse_duration("time_budget", text) == seconds


@pytest.mark.parametrize("text", ["0", "20 minutes", "-5m", "m", True])
def test_bad_durations_are_refused_in_one_line(text):
    with pytest.raises(UsageError, match="time_budget must be a duration above 0 such as 90s, 20m or 1.5h"):
        parse_duration("time_budget", text)


@pytest.mark.parametrize("budget,spent,step,steps,eval_s,freq,epochs", [
    (100, 0, 1.0, 10, 0.0, 1, 9),     # 90 s usable, 10 s an epoch
    (100, 5, 1.0, 10, 2.0, 1, 6),     # 90 - 5 - 2 (the last evaluation) = 83 s, 12 s an epoch
    (100, 0, 1.0, 10, 10.0, 2, 5),    # 80 s, 15 s an epoch (an evaluation every second epoch)
    (10, 0, 1.0, 10, 0.0, 1, 0),      # not one epoch fits
])
def test_the_epochs_that_fit(budget, spent, step, steps, eval_s, freq, epochs):
    assert RESERVE == 0.1
    assert plan_epochs(budget, spent, step, steps, eval_s, freq) == epochs


class MadeUpClock:
    """Each reading is ``tick`` seconds after the last: every timed interval between two readings lasts ``tick``."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def _budget_config(data_root, tmp_path, **overrides):
    return tiny_config(data_root, tmp_path, batch_size=4, model="lenet", time_budget="1m", lr_schedule="cosine",
                       export=False, **overrides)


def test_a_planned_run_fits_its_epochs_and_cosine_to_the_budget_and_a_resume_keeps_the_plan(data_root, tmp_path,
                                                                                           monkeypatch, capsys):
    monkeypatch.setattr(time_budget, "clock", MadeUpClock(1.0))
    runner = Runner(_budget_config(data_root, tmp_path))
    steps, eval_batches = len(runner.train_loader), len(runner.eval_loader)  # 12 and 4
    eval_s = 1.0 / min(eval_batches, 3) * eval_batches
    spent = 2 * min(steps, 6) + 2 + 1  # readings after the first: 2 per timed step, 2 for the evaluation, the last
    expected = plan_epochs(60, spent, 1.0, steps, eval_s)
    assert expected >= 2
    assert runner.config.epochs == expected
    assert runner.lr.inner.T_max == expected * steps  # the cosine ends with the last planned step
    runner.fit()
    printed = capsys.readouterr().out.splitlines()
    plan_line = next(i for i, line in enumerate(printed) if f"so {expected} epochs of {steps} steps" in line)
    assert plan_line < next(i for i, line in enumerate(printed) if "-> " in line)  # the plan opens the run
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == expected and config["time_budget"] == "1m"
    assert config["time_budget_plan"]["step_s"] == 1.0 and config["time_budget_plan"]["epochs"] == expected
    assert len(json.loads((run / "results.json").read_text())["final_eval"]) == 3
    assert sum(1 for _ in open(run / "metrics.csv")) == expected + 1  # every planned epoch trained

    # Killed after its last checkpoint: the resume takes its plan from config.json, on a clock that would plan otherwise.
    (run / "results.json").unlink()
    monkeypatch.setattr(time_budget, "clock", MadeUpClock(0.001))
    from hapi_runner import TrainConfig

    resumed = Runner(TrainConfig.for_resume(str(run), verbose=0))
    assert resumed.config.epochs == expected
    resumed.fit()
    assert "time budget" not in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["time_budget_plan"] == config["time_budget_plan"]


def test_a_budget_too_small_for_one_epoch_is_refused(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(time_budget, "clock", MadeUpClock(10.0))
    with pytest.raises(UsageError, match=r"--time-budget 1m: one epoch takes about .* give at least"):
        Runner(_budget_config(data_root, tmp_path))
