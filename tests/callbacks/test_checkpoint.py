"""ModelCheckpoint: hooks driven with made-up logs on a real tiny paddle.Model, then a writer killed mid-save."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks.base import MonitorCallback, RunCallback
from hapi_runner.callbacks.checkpoint import ModelCheckpoint
from hapi_runner.runfolder.checkpoint_format import link_target, sha256_file
from hapi_runner.runfolder.layout import epoch_folders, epoch_of
from hapi_runner.errors import UsageError
from hapi_runner.runfolder.resume import find_checkpoint, load_checkpoint

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

REPO = Path(__file__).resolve().parents[2]


def tiny_model(seed=0):
    """A prepared paddle.Model: Linear(4, 3), Momentum with a per-batch StepDecay, one real step taken."""
    paddle.seed(seed)
    net = paddle.nn.Linear(4, 3)
    model = paddle.Model(net, paddle.static.InputSpec([None, 4], "float32", "x"), paddle.static.InputSpec([None, 1], "int64", "y"))
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=2, gamma=0.5)
    model.prepare(paddle.optimizer.Momentum(sched, momentum=0.9, parameters=net.parameters()), paddle.nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy())
    x = np.random.default_rng(seed).random((8, 4), dtype=np.float32)
    model.train_batch([x], [np.zeros((8, 1), dtype=np.int64)])  # so the optimizer has velocities to save
    sched.step()
    return model


class Counter(RunCallback):
    """A state source: counts epochs."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def on_epoch_end(self, epoch, logs=None):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def drive(ckpt, model, values, evaluate=True, steps=3, metric="acc_top1", others=()):
    """Runs ckpt (and ``others``) through a fit of len(values) epochs as hapi would call them.

    ``values[e]`` is epoch e's figure for ``metric`` (logged by evaluation,
    or by training for a ``train_`` metric).
    """
    callbacks = [ckpt, *others]
    name = metric.replace("train_", "").replace("eval_", "")
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params({"epochs": len(values), "metrics": ["loss", "acc_top1"]})
        cb.on_train_begin()
    for epoch, value in enumerate(values):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        for step in range(steps):
            for cb in callbacks:
                cb.on_train_batch_end(step, {"loss": [0.5], "batch_size": 8})
        train_logs = {"loss": [0.5], "acc_top1": 0.5, **({name: value} if metric.startswith("train_") else {})}
        for cb in callbacks:
            cb.on_epoch_end(epoch, train_logs)
        if evaluate:
            eval_logs = {"loss": [0.4], "acc_top1": 0.6, **({} if metric.startswith("train_") else {name: value})}
            for cb in callbacks:
                cb.on_eval_begin()
                cb.on_eval_end(eval_logs)
    for cb in callbacks:
        cb.on_train_end()


def epochs_in(directory):
    return epoch_folders(str(directory))


def state_of(directory, name):
    with open(os.path.join(directory, name, "state.json"), encoding="utf-8") as fh:
        return json.load(fh)


# --- arguments -----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"save_freq": 0}, r"save_freq must be >= 1 \(epochs between checkpoints\), got 0"),
    ({"save_freq": 1.5}, "save_freq must be an integer >= 1"),
    ({"keep_last": 0}, r"keep_last must be >= 1 \(or None: keep every checkpoint\), got 0"),
    ({"monitor": "f1"}, "cannot tell whether 'f1' should go up or down"),
    ({"mode": "up"}, "mode must be 'min' or 'max'"),
    ({"fingerprint": "lenet"}, "fingerprint must be a dict"),
    ({"fingerprint": {"model": object()}}, "fingerprint must hold JSON values"),
    ({"state_sources": {"history": object()}}, "state source 'history' .* needs state_dict"),
    ({"state_sources": {"checkpoint": Counter()}}, "the name 'checkpoint' is this callback's own"),
    ({"is_writer": 1}, "is_writer must be true or false, got 1"),
])
def test_bad_arguments_are_refused_eagerly(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        ModelCheckpoint(tmp_path, **kwargs)


def test_missing_monitor_lists_the_metrics(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, monitor="acc_top5")
    with pytest.raises(UsageError, match="'acc_top5' is not among the eval metrics: loss, acc_top1"):
        drive(ckpt, tiny_model(), [0.1])


# --- when and what it saves --------------------------------------------------------

@pytest.mark.parametrize("save_freq, epochs, expected", [
    (1, 3, [1, 2, 3]),
    (2, 5, [2, 4, 5]),  # the last epoch of a fit is always saved
    (3, 6, [3, 6]),
])
def test_one_folder_per_save_freq_epochs(tmp_path, save_freq, epochs, expected):
    ckpt = ModelCheckpoint(tmp_path, save_freq=save_freq)
    drive(ckpt, tiny_model(), [0.1] * epochs)
    assert epochs_in(tmp_path) == expected
    assert ckpt.saved == expected
    assert link_target(tmp_path, "last") == f"epoch_{expected[-1]}"


@pytest.mark.parametrize("evaluate", [True, False])
def test_each_save_sees_its_epoch_over(tmp_path, evaluate):
    """Saved after evaluation when there is one, else just before the next epoch: global_step counts the whole epoch."""
    ckpt = ModelCheckpoint(tmp_path, monitor="train_loss")
    drive(ckpt, tiny_model(), [0.9, 0.8, 0.7], evaluate=evaluate, steps=4)
    assert [state_of(tmp_path, f"epoch_{e}")["global_step"] for e in (1, 2, 3)] == [4, 8, 12]


def test_state_json_holds_what_a_resume_needs(tmp_path):
    counter = Counter()
    fingerprint = {"model": "linear", "dataset": "made-up", "input_shape": [4], "config": "abc123"}
    ckpt = ModelCheckpoint(tmp_path, fingerprint=fingerprint, state_sources={"counter": counter})
    model = tiny_model()
    drive(ckpt, model, [0.3, 0.5], steps=2, others=[counter])

    folder = tmp_path / "epoch_2"
    state = state_of(tmp_path, "epoch_2")
    assert state["complete"] is True
    assert (state["epoch"], state["global_step"]) == (2, 4)
    assert state["monitor"] == {"name": "acc_top1", "mode": "max", "value": 0.5, "best": 0.5, "best_epoch": 2}
    assert state["sources"]["counter"] == {"count": 2}
    assert state["sources"]["checkpoint"] == {"best": 0.5, "best_epoch": 2, "monitor": "acc_top1", "mode": "max", "global_step": 4}
    assert state["fingerprint"] == fingerprint
    assert state["paddle_version"] == paddle.__version__
    assert (state["optimizer"], state["lr_scheduler"]) == ("Momentum", "StepDecay")
    assert state["param_names"] == {"weight": model.network.weight.name, "bias": model.network.bias.name}
    assert sorted(state["files"]) == ["model.pdopt", "model.pdparams", "rng.pdstate"]
    for name, digest in state["files"].items():
        assert sha256_file(str(folder / name)) == digest
    np.testing.assert_array_equal(paddle.load(str(folder / "model.pdparams"))["weight"].numpy(), model.network.weight.numpy())
    opt = paddle.load(str(folder / "model.pdopt"))
    assert opt["LR_Scheduler"]["last_epoch"] == 1
    assert any(k.endswith("_velocity_0") for k in opt)
    # Paddle's RNG state round-trips: restoring it repeats the draws that followed the save.
    after = paddle.rand([3]).numpy()
    paddle.set_rng_state(paddle.load(str(folder / "rng.pdstate")))
    np.testing.assert_array_equal(paddle.rand([3]).numpy(), after)
    assert len(state["rng"]["numpy"][1]) == 624


# --- best, last, pruning -----------------------------------------------------------

@pytest.mark.parametrize("monitor, mode, values, best_epoch", [
    ("acc_top1", None, [0.2, 0.6, 0.4, 0.6], 2),  # max by the table; a tie is no improvement
    ("eval_acc_top1", None, [0.2, 0.6, 0.7, 0.1], 3),
    ("loss", None, [0.9, 0.5, 0.7, 0.6], 2),  # min by the table
    ("train_loss", None, [0.9, 0.8, 0.3, 0.4], 3),  # a training metric
    ("acc_top1", "min", [0.2, 0.6, 0.1, 0.4], 3),  # mode overrides the table
])
def test_best_follows_the_monitor(tmp_path, monitor, mode, values, best_epoch):
    ckpt = ModelCheckpoint(tmp_path, monitor=monitor, mode=mode)
    drive(ckpt, tiny_model(), values, metric=monitor)
    assert link_target(tmp_path, "best") == f"epoch_{best_epoch}"
    assert ckpt.best_epoch == best_epoch
    assert ckpt.best == pytest.approx(values[best_epoch - 1])
    assert state_of(tmp_path / "best", ".")["epoch"] == best_epoch  # checkpoints/best/... reads like a folder


def test_min_delta_makes_small_gains_no_improvement(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, min_delta=0.05)
    drive(ckpt, tiny_model(), [0.5, 0.53, 0.6])
    assert link_target(tmp_path, "best") == "epoch_3"
    assert ckpt.best == pytest.approx(0.6)
    assert [state_of(tmp_path, f"epoch_{e}")["monitor"]["best_epoch"] for e in (1, 2, 3)] == [1, 1, 3]


def test_best_is_among_saved_epochs_only(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, save_freq=2)
    drive(ckpt, tiny_model(), [0.1, 0.3, 0.9, 0.2])  # epoch 3 is best but is not saved
    assert epochs_in(tmp_path) == [2, 4]
    assert link_target(tmp_path, "best") == "epoch_2"


def test_keep_last_prunes_but_never_best_or_last(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, keep_last=2)
    drive(ckpt, tiny_model(), [0.2, 0.9, 0.3, 0.4, 0.5, 0.6])
    assert epochs_in(tmp_path) == [2, 5, 6]  # 2 is best
    assert link_target(tmp_path, "best") == "epoch_2"
    assert link_target(tmp_path, "last") == "epoch_6"
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".tmp-")]


def test_last_points_at_a_complete_checkpoint_after_every_save(tmp_path):
    seen = []

    class Spy(ModelCheckpoint):
        def save(self, epoch, value=None):
            folder = super().save(epoch, value)
            seen.append((epoch, load_checkpoint(str(tmp_path / "last"))["epoch"]))
            return folder

    drive(Spy(tmp_path, keep_last=1), tiny_model(), [0.1, 0.2, 0.3])
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_a_fit_ended_early_saves_its_last_epoch(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, save_freq=5)
    drive(ckpt, tiny_model(), [0.1, 0.2])  # params say 2 epochs: the 2nd is the last
    model = tiny_model()
    ckpt2 = ModelCheckpoint(tmp_path / "early", save_freq=5)
    ckpt2.set_model(model)
    ckpt2.set_params({"epochs": 10, "metrics": ["loss", "acc_top1"]})
    ckpt2.on_train_begin()
    for epoch in range(3):  # stopped after 3 of 10 epochs, as EarlyStopping would
        ckpt2.on_epoch_begin(epoch)
        ckpt2.on_epoch_end(epoch, {"loss": [0.5]})
        ckpt2.on_eval_end({"loss": [0.4], "acc_top1": 0.1 * epoch})
    ckpt2.on_train_end()
    assert epochs_in(tmp_path) == [2]
    assert epochs_in(tmp_path / "early") == [3]


def test_leftover_tmp_folders_are_cleaned_at_the_next_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    litter = [tmp_path / f".tmp-epoch_7-{dead.pid}", tmp_path / f".tmp-last-{dead.pid}", tmp_path / ".tmp-del-epoch_1-999999999"]
    litter[0].mkdir(parents=True)
    (litter[0] / "model.pdparams").write_bytes(b"half")
    os.symlink("epoch_7", litter[1])
    litter[2].mkdir()
    alive = tmp_path / f".tmp-epoch_1-{os.getppid()}"  # a live writer's work in progress is not touched
    alive.mkdir()
    ckpt = ModelCheckpoint(tmp_path)
    drive(ckpt, tiny_model(), [0.1])
    assert sorted(e for e in os.listdir(tmp_path) if e.startswith(".tmp-")) == [alive.name]


def test_a_non_writer_rank_writes_nothing(tmp_path):
    ckpt = ModelCheckpoint(tmp_path / "checkpoints", is_writer=False)
    drive(ckpt, tiny_model(), [0.1, 0.2])
    assert not (tmp_path / "checkpoints").exists()
    assert ckpt.saved == [1, 2] and ckpt.best_epoch == 2  # it still keeps count, like rank 0


def test_one_instance_serves_two_fits(tmp_path):
    ckpt = ModelCheckpoint(tmp_path / "a")
    drive(ckpt, tiny_model(), [0.9, 0.8])
    ckpt.directory = str(tmp_path / "b")
    drive(ckpt, tiny_model(), [0.1, 0.2])
    assert (ckpt.best, ckpt.best_epoch, ckpt.global_step) == (pytest.approx(0.2), 2, 6)
    assert link_target(tmp_path / "b", "best") == "epoch_2"


# --- a writer killed at a random instant ------------------------------------------

WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import paddle
    from hapi_runner.callbacks.checkpoint import ModelCheckpoint
    from hapi_runner.runfolder.resume import find_checkpoint, restore, set_epoch_offset

    directory = sys.argv[1]
    net = paddle.nn.Sequential(paddle.nn.Linear(128, 512), paddle.nn.Linear(512, 128))  # ~0.5 MB per file
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.Momentum(0.01, parameters=net.parameters()))
    ckpt = ModelCheckpoint(directory, keep_last=2, monitor="loss")
    start = 0
    if os.path.isdir(directory) and os.listdir(directory):  # carry on from the last good checkpoint
        start = restore(model, find_checkpoint(directory), None, ckpt.sources()).epoch
    set_epoch_offset([ckpt], start)
    ckpt.set_model(model)
    ckpt.set_params({"epochs": 10 ** 6, "metrics": ["loss"]})
    ckpt.on_train_begin()
    print("ready", start, flush=True)
    rng = np.random.default_rng(start)
    for epoch in range(10 ** 6):
        ckpt.on_epoch_begin(epoch)
        for p in net.parameters():
            p.set_value(p + 0.001)
        ckpt.on_train_batch_end(0, {})
        ckpt.on_epoch_end(epoch, {"loss": [1.0]})
        ckpt.on_eval_end({"loss": [float(rng.random())]})
""")


def test_a_writer_killed_at_any_instant_leaves_a_loadable_checkpoint(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    directory = tmp_path / "checkpoints"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    chance = random.Random(1234)
    epochs = []
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(directory)], stdout=subprocess.PIPE, env=env, text=True)
        try:
            ready, start = proc.stdout.readline().split()
            deadline = time.monotonic() + 60
            while (epoch_of(link_target(str(directory), "last") or "") or 0) <= int(start):  # a save of its own first
                assert time.monotonic() < deadline and proc.poll() is None, "the writer saved nothing"
                time.sleep(0.01)
            time.sleep(chance.uniform(0.0, 0.4))  # then killed wherever it is: mid-file, mid-rename, mid-prune
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()  # reaped, so the next start sees its pid as dead
        # Every published checkpoint is whole, and last and best point at one.
        for epoch in epochs_in(directory):
            assert load_checkpoint(str(directory / f"epoch_{epoch}"))["epoch"] == epoch
        state = load_checkpoint(find_checkpoint(str(directory)))
        # The newest folder, or the one before if the kill fell between publishing a folder and repointing last.
        assert state["epoch"] in epochs_in(directory)[-2:]
        assert load_checkpoint(str(directory / "best"))["complete"]
        paddle.load(os.path.join(state["folder"], "model.pdparams"))
        epochs.append(state["epoch"])
    assert epochs == sorted(epochs)  # each start resumed where the last one died
    ModelCheckpoint(directory).on_train_begin()  # the next start clears the litter of the killed ones
    assert not [e for e in os.listdir(directory) if e.startswith(".tmp-")]


# --- resuming with another monitor --------------------------------------------

def test_a_resume_with_another_monitor_keeps_the_step_counts(tmp_path, caplog):
    from hapi_runner.callbacks.visualdl import VisualDLLogger
    from hapi_runner.runfolder.resume import restore, set_epoch_offset

    pytest.importorskip("visualdl")
    logger = VisualDLLogger(str(tmp_path / "visualdl"), log_freq=1)
    ckpt = ModelCheckpoint(tmp_path / "ckpt", state_sources={"visualdl": logger})
    model = tiny_model()
    drive(ckpt, model, [0.5, 0.6], steps=3, others=[logger])
    assert (ckpt.global_step, logger.global_step) == (6, 6)

    logger2 = VisualDLLogger(str(tmp_path / "visualdl"), log_freq=1)
    resumed = ModelCheckpoint(tmp_path / "ckpt", monitor="loss", state_sources={"visualdl": logger2})
    point = restore(model, find_checkpoint(str(tmp_path / "ckpt")), None, resumed.sources())
    set_epoch_offset([resumed, logger2], point.epoch)
    drive(resumed, model, [0.4], steps=3, others=[logger2])
    assert (resumed.global_step, logger2.global_step) == (9, 9)
    assert state_of(tmp_path / "ckpt", "epoch_3")["global_step"] == 9
    # The old best was of another metric: the new one is this run's own.
    assert (resumed.best, resumed.best_epoch) == (pytest.approx(0.4), 3)
    assert "the saved state watched acc_top1 (max), this run watches loss (min)" in caplog.text


# --- the restore contract ------------------------------------------------------

class Tally(MonitorCallback):
    """Per-run state set up after the base __init__, as any subclass would."""

    def __init__(self):
        super().__init__(monitor="loss")
        self.seen = []

    def state_dict(self):
        return {**super().state_dict(), "seen": list(self.seen)}

    def load_state_dict(self, state):
        if not super().load_state_dict(state):
            return False
        self.seen = list(state["seen"])
        return True

    def reset(self):
        super().reset()
        self.seen = []

    def on_monitor(self, value, logs):
        self.seen.append(value)
        self.update(value)


def test_per_run_state_resets_at_train_begin_unless_restored(tmp_path):
    tally = Tally()
    assert (tally.restored, tally.seen) == (False, [])
    drive(ModelCheckpoint(tmp_path / "a", monitor="loss"), tiny_model(), [0.3, 0.2], metric="loss", others=[tally])
    assert tally.seen == [0.3, 0.2] and tally.best == pytest.approx(0.2)

    resumed = Tally()
    assert resumed.load_state_dict(tally.state_dict()) is True and resumed.restored
    drive(ModelCheckpoint(tmp_path / "b", monitor="loss"), tiny_model(), [0.1], metric="loss", others=[resumed])
    assert resumed.seen == [0.3, 0.2, 0.1] and not resumed.restored

    drive(ModelCheckpoint(tmp_path / "c", monitor="loss"), tiny_model(), [0.5], metric="loss", others=[resumed])
    assert resumed.seen == [0.5] and resumed.best == pytest.approx(0.5)  # a fit without a restore is a fresh run


def test_state_of_another_metric_restores_nothing(tmp_path):
    tally = Tally()
    assert tally.load_state_dict({"best": 0.9, "best_epoch": 2, "monitor": "acc_top1", "mode": "max", "seen": [0.9]}) is False
    assert not tally.restored and tally.best is None and tally.seen == []
