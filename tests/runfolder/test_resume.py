"""hapi_runner.runfolder.resume: finding, verifying and restoring checkpoints, and a resumed fit that matches an unbroken one."""

import json
import logging
import os
import shutil

import numpy as np
import paddle
import pytest

from hapi_runner.callbacks.checkpoint import ModelCheckpoint
from hapi_runner.runfolder.checkpoint_format import link_target, sha256_file
from hapi_runner.datasets.pipeline import BatchTransform, ImageDataset, make_loader
from hapi_runner.errors import HapiRunnerError, UsageError
from hapi_runner.runfolder import layout as rundir
from hapi_runner.runfolder.resume import (CheckpointError, ResumePoint, find_checkpoint, load_checkpoint, load_weights,
                                restore, set_epoch_offset)
from hapi_runner.training.runner import _EpochSeeder
from hapi_runner.paddle_compat import lr_scheduler_of, pending_optimizer_state, optimizer_of

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run

SEED = 7
FINGERPRINT = {"model": "tinyconv", "dataset": "made-up", "input_shape": [1, 8, 8], "config": "0123abcd"}
STEPS_PER_EPOCH = 6  # 48 images, batches of 8


# --- the harness: what Runner.fit does, in miniature ---------------------------------

def datasets():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8)
    labels = (images.reshape(64, -1).mean(axis=1) > 127).astype(np.int64) + (images[:, 0, 0, 0] > 200)
    names = ["a", "b", "c"]
    # crop-flip augmentation draws from a numpy generator seeded by (seed, epoch): resume must repeat it.
    train = ImageDataset(images[:48], labels[:48], names, None, BatchTransform([0.5], [0.25], augment="crop-flip", seed=SEED))
    evalset = ImageDataset(images[48:], labels[48:], names, None, BatchTransform([0.5], [0.25]))
    return train, evalset


def build_model(out=3, optimizer="momentum", schedule=True):
    """Conv2D + Dropout (so Paddle's RNG matters) + Linear, Momentum with L2 decay and a per-batch StepDecay."""
    net = paddle.nn.Sequential(paddle.nn.Conv2D(1, 4, 3), paddle.nn.ReLU(), paddle.nn.Dropout(0.3), paddle.nn.Flatten(),
                               paddle.nn.Linear(4 * 6 * 6, out))
    model = paddle.Model(net, paddle.static.InputSpec([None, 1, 8, 8], "float32", "image"),
                         paddle.static.InputSpec([None, 1], "int64", "label"))
    # StepDecay is stepped per batch by hapi's LRScheduler callback.
    lr = paddle.optimizer.lr.StepDecay(0.05, step_size=5, gamma=0.7) if schedule else 0.05
    if optimizer == "momentum":
        optimizer = paddle.optimizer.Momentum(lr, momentum=0.9, parameters=net.parameters(),
                                              weight_decay=paddle.regularizer.L2Decay(1e-4))
    else:
        optimizer = paddle.optimizer.Adam(lr, parameters=net.parameters())
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy(topk=(1, 2)))
    return model


def run(directory, total_epochs, resume=None, init_seed=SEED, tamper=None, eval_freq=1, **ckpt_args):
    """Trains to ``total_epochs``, from scratch or resumed from ``resume``, exactly as Runner.fit is to.

    ``tamper(seeder)`` breaks one piece of the resume on purpose (the controls).
    """
    paddle.seed(init_seed)
    np.random.seed(init_seed)
    train, evalset = datasets()
    loader, eval_loader = make_loader(train, 8, shuffle=True), make_loader(evalset, 16, shuffle=False)
    seeder = _EpochSeeder(loader, SEED)
    model = build_model()
    ckpt = ModelCheckpoint(directory, fingerprint=FINGERPRINT, **ckpt_args)
    callbacks = [ckpt, seeder.callback()]
    done = 0
    if resume is not None:
        point = restore(model, find_checkpoint(resume), FINGERPRINT, ckpt.sources())
        done = point.epoch
        set_epoch_offset([*callbacks, seeder], done)
        if tamper:
            tamper(seeder)
    model.fit(loader, eval_loader, epochs=total_epochs - done, eval_freq=eval_freq, verbose=0, callbacks=callbacks)
    return model, ckpt


def weights(model):
    return {k: v.numpy() for k, v in model.network.state_dict().items()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run folder trained 3 epochs with a checkpoint each epoch; tests work on copies."""
    root = tmp_path_factory.mktemp("pristine")
    run(root / "run_001" / "checkpoints", 3)
    return root / "run_001"


@pytest.fixture
def hapi_log(caplog, monkeypatch):
    """caplog for the 'hapi_runner' logger, which the CLI (run by other tests in this process) detaches from root."""
    monkeypatch.setattr(logging.getLogger("hapi_runner"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="hapi_runner")
    return caplog


@pytest.fixture
def run_dir(pristine, tmp_path):
    target = tmp_path / "run_001"
    shutil.copytree(pristine, target, symlinks=True)
    return target


# --- finding --------------------------------------------------------------------------

@pytest.mark.parametrize("where, expected", [
    ("", "epoch_3"),  # a run folder
    ("checkpoints", "epoch_3"),
    ("checkpoints/last", "epoch_3"),
    ("checkpoints/epoch_2", "epoch_2"),
    ("checkpoints/best", None),
])
def test_find_checkpoint_resolves_every_kind_of_path(run_dir, where, expected):
    expected = expected or link_target(str(run_dir / "checkpoints"), "best")
    assert find_checkpoint(str(run_dir / where)) == os.path.realpath(run_dir / "checkpoints" / expected)


def test_find_checkpoint_without_last_takes_the_newest_epoch_folder(run_dir):
    os.unlink(run_dir / "checkpoints" / "last")
    assert find_checkpoint(str(run_dir)).endswith("epoch_3")


@pytest.mark.parametrize("setup, match", [
    (lambda d: d / "nowhere", "does not exist"),
    (lambda d: d, "no checkpoint in"),
    (lambda d: (os.symlink("epoch_9", d / "last"), d / "last")[1], "which does not exist"),
])
def test_find_checkpoint_refuses_what_holds_none(tmp_path, setup, match):
    with pytest.raises(UsageError, match=match):
        find_checkpoint(str(setup(tmp_path)))


def test_latest_run_is_the_highest_numbered_run_with_a_checkpoint(run_dir, tmp_path):
    name = tmp_path / "out" / "lenet-mini"
    for number in ("run_002", "run_010"):
        shutil.copytree(run_dir, name / number, symlinks=True)
    (name / "run_011").mkdir()  # newer, but never reached its first checkpoint
    assert rundir.latest_run(str(tmp_path / "out"), "lenet-mini") == str(name / "run_010")
    assert rundir.latest_run(str(tmp_path / "out"), "resnet18-cifar10") is None


# --- verifying and falling back ---------------------------------------------------------

def truncate(folder, name="model.pdparams"):
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def unloadable_but_hashed(folder):
    """Garbage whose sha256 is on record: only loading it can tell."""
    (folder / "model.pdparams").write_bytes(b"not a pickle")
    state = json.loads((folder / "state.json").read_text())
    state["files"]["model.pdparams"] = sha256_file(str(folder / "model.pdparams"))
    (folder / "state.json").write_text(json.dumps(state))


def mark_incomplete(folder):
    state = json.loads((folder / "state.json").read_text())
    state["complete"] = False
    (folder / "state.json").write_text(json.dumps(state))


DAMAGE = {
    "truncated pdparams": (truncate, "model.pdparams does not match its sha256"),
    "truncated pdopt": (lambda f: truncate(f, "model.pdopt"), "model.pdopt does not match its sha256"),
    "missing rng": (lambda f: os.unlink(f / "rng.pdstate"), "is missing rng.pdstate"),
    "no state.json": (lambda f: os.unlink(f / "state.json"), "has no state.json"),
    "garbage state.json": (lambda f: (f / "state.json").write_bytes(b"{\"epoch\": 3, \"comp"), "state.json cannot be read"),
    "not complete": (mark_incomplete, "is not marked complete"),
    "unloadable pdparams": (unloadable_but_hashed, "model.pdparams cannot be loaded"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(run_dir, hapi_log, damage):
    spoil, message = DAMAGE[damage]
    spoil(run_dir / "checkpoints" / "epoch_3")
    model = build_model()
    point = restore(model, find_checkpoint(str(run_dir)), FINGERPRINT)
    assert point == ResumePoint(2, 2 * STEPS_PER_EPOCH, os.path.realpath(run_dir / "checkpoints" / "epoch_2"))
    assert message in hapi_log.text and "epoch_3" in hapi_log.text
    saved = paddle.load(str(run_dir / "checkpoints" / "epoch_2" / "model.pdparams"))
    for key, value in weights(model).items():
        np.testing.assert_array_equal(value, saved[key].numpy())


@pytest.mark.parametrize("damage", ["truncated pdparams", "garbage state.json"])
def test_load_checkpoint_names_what_is_wrong(run_dir, damage):
    spoil, message = DAMAGE[damage]
    folder = run_dir / "checkpoints" / "epoch_1"
    assert load_checkpoint(str(folder))["epoch"] == 1
    spoil(folder)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(str(folder))


def test_no_good_checkpoint_is_one_clear_error(run_dir):
    for epoch in (1, 2, 3):
        truncate(run_dir / "checkpoints" / f"epoch_{epoch}")
    with pytest.raises(HapiRunnerError, match=r"^no usable checkpoint at or before '.*epoch_3': .*epoch_1.*sha256") as info:
        restore(build_model(), find_checkpoint(str(run_dir)), FINGERPRINT)
    assert "\n" not in str(info.value)


def test_an_unloadable_file_names_its_cause(run_dir):
    folder = run_dir / "checkpoints" / "epoch_3"
    unloadable_but_hashed(folder)
    with pytest.raises(CheckpointError, match=r"epoch_3': model.pdparams cannot be loaded \(ValueError: ") as info:
        load_weights(build_model().network, str(folder))
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("load", ["restore", "load_weights"])
def test_a_bug_in_loading_is_no_damaged_checkpoint(run_dir, hapi_log, monkeypatch, load):
    def broken_load(path, **kwargs):
        raise TypeError("load() got an unexpected keyword argument")

    monkeypatch.setattr(paddle, "load", broken_load)
    model = build_model()
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        if load == "restore":
            restore(model, find_checkpoint(str(run_dir)), FINGERPRINT)
        else:
            load_weights(model.network, find_checkpoint(str(run_dir)), FINGERPRINT)
    assert "Trying the previous checkpoint" not in hapi_log.text


# --- refusing checkpoints of another run ----------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"model": "lenet"}, "checkpoint is for model tinyconv, this run is lenet"),
    ({"dataset": "cifar10"}, "checkpoint is for dataset made-up, this run is cifar10"),
    ({"input_shape": [3, 32, 32]}, "checkpoint is for input shape 1x8x8, this run is 3x32x32"),
    ({"config": "ffff0000"}, "checkpoint is for config fingerprint 0123abcd, this run is ffff0000"),
])
def test_a_checkpoint_of_another_run_is_refused(run_dir, change, message):
    with pytest.raises(UsageError, match=message):
        restore(build_model(), find_checkpoint(str(run_dir)), {**FINGERPRINT, **change})


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "adam"}, "trained with optimizer Momentum, this run uses Adam"),
    ({"schedule": False}, r"trained with LR schedule StepDecay, this run uses none \(a constant rate\)"),
])
def test_a_checkpoint_of_another_optimizer_is_refused(run_dir, kwargs, message):
    with pytest.raises(UsageError, match=message):
        restore(build_model(**kwargs), find_checkpoint(str(run_dir)), FINGERPRINT)


def test_weights_that_do_not_fit_are_refused_without_a_fingerprint(run_dir):
    with pytest.raises(UsageError, match=r"does not fit this model: 4.weight is \[144, 3\] there and \[144, 5\] here"):
        restore(build_model(out=5), find_checkpoint(str(run_dir)))


# --- restoring ------------------------------------------------------------------------

def test_restore_brings_back_optimizer_lr_schedule_rng_and_sources(run_dir, hapi_log):
    folder = run_dir / "checkpoints" / "epoch_2"
    paddle.seed(123)  # a different process history: other parameter names, other random state
    model = build_model()
    ckpt = ModelCheckpoint(run_dir / "checkpoints")
    extra = ModelCheckpoint(run_dir / "other")  # a source the checkpoint knows nothing about
    point = restore(model, str(folder), FINGERPRINT, {**ckpt.sources(), "new": extra})
    assert point == ResumePoint(2, 12, str(folder.resolve()))
    assert "holds no state for 'new'; it starts afresh" in hapi_log.text
    state = load_checkpoint(str(folder))
    assert (ckpt.best, ckpt.best_epoch, ckpt.global_step) == (state["monitor"]["best"], state["monitor"]["best_epoch"], 12)

    optimizer = optimizer_of(model)
    assert lr_scheduler_of(model).last_epoch == 2 * STEPS_PER_EPOCH  # the LR schedule continues, not restarts
    assert optimizer.get_lr() == pytest.approx(0.05 * 0.7 ** (12 // 5))
    saved_opt = paddle.load(str(folder / "model.pdopt"))
    saved_names = state["param_names"]
    # Velocities arrive under this process's parameter names: the next step uses them.
    for key, param in model.network.named_parameters():
        velocity = pending_optimizer_state(optimizer)[f"{param.name}_velocity_0"]
        np.testing.assert_array_equal(np.asarray(velocity), saved_opt[f"{saved_names[key]}_velocity_0"].numpy())
    rng_after = paddle.rand([4]).numpy()
    paddle.set_rng_state(paddle.load(str(folder / "rng.pdstate")))
    np.testing.assert_array_equal(paddle.rand([4]).numpy(), rng_after)
    np.random.seed(0)
    restore(model, str(folder))
    assert np.random.get_state()[1].tolist() == state["rng"]["numpy"][1]


@pytest.mark.parametrize("eval_freq", [1, 2], ids=["saved after eval", "saved without eval"])
def test_resumed_fit_ends_with_the_weights_of_an_unbroken_one(tmp_path, eval_freq):
    straight, straight_ckpt = run(tmp_path / "straight", 4, eval_freq=eval_freq)
    run(tmp_path / "broken" / "checkpoints", 2, eval_freq=eval_freq)
    # A fresh model, other initial weights and random state: everything must come from the checkpoint.
    resumed, resumed_ckpt = run(tmp_path / "broken" / "checkpoints", 4, resume=tmp_path / "broken", init_seed=SEED + 1,
                                eval_freq=eval_freq)

    # Same float32 ops in the same order on the same CPU build: bit-identical in practice. atol=1e-6 leaves room
    # for a oneDNN kernel choice differing between the two model instances; what would break it for real is
    # another thread count or Paddle/oneDNN build, or a GPU with non-deterministic cuDNN algorithms.
    for key, value in weights(straight).items():
        np.testing.assert_allclose(weights(resumed)[key], value, rtol=0, atol=1e-6, err_msg=key)
    assert lr_scheduler_of(resumed).last_epoch == lr_scheduler_of(straight).last_epoch == 24
    assert resumed_ckpt.global_step == straight_ckpt.global_step == 4 * STEPS_PER_EPOCH
    assert resumed_ckpt.saved == [3, 4]
    assert load_checkpoint(find_checkpoint(str(tmp_path / "broken")))["epoch"] == 4
    straight_state = load_checkpoint(str(tmp_path / "straight" / "epoch_4"))
    resumed_state = load_checkpoint(str(tmp_path / "broken" / "checkpoints" / "epoch_4"))
    assert resumed_state["monitor"] == straight_state["monitor"]  # eval accuracy and best epoch agree too
    assert link_target(str(tmp_path / "straight"), "best") == link_target(str(tmp_path / "broken" / "checkpoints"), "best")


@pytest.mark.parametrize("tamper", [
    lambda seeder: setattr(seeder, "epoch_offset", 0),  # epochs 3-4 would shuffle and crop like epochs 1-2
    lambda seeder: paddle.seed(SEED),  # dropout would draw other masks
], ids=["no data offset", "no rng restore"])
def test_the_resume_check_notices_a_missing_piece(tmp_path, tamper):
    """Controls: with one piece of the resume left out, the weights do differ."""
    straight, _ = run(tmp_path / "straight", 4)
    run(tmp_path / "broken" / "checkpoints", 2)
    resumed, _ = run(tmp_path / "broken" / "checkpoints", 4, resume=tmp_path / "broken", tamper=tamper)
    differences = [np.abs(weights(resumed)[k] - v).max() for k, v in weights(straight).items()]
    assert max(differences) > 1e-4


def test_resuming_an_older_checkpoint_in_place_repoints_last_and_best(run_dir, hapi_log):
    directory = run_dir / "checkpoints"
    _, ckpt = run(directory, 2, resume=directory / "epoch_1", save_freq=5)
    assert "checkpoints of epochs 2, 3 come after the resumed epoch 1" in hapi_log.text
    assert link_target(str(directory), "last") == "epoch_2"
    assert load_checkpoint(str(directory / "epoch_2"))["global_step"] == 2 * STEPS_PER_EPOCH
    best = link_target(str(directory), "best")
    assert best in ("epoch_1", "epoch_2") and ckpt.best_epoch == int(best.split("_")[1])
    assert not [e for e in os.listdir(directory) if e.startswith(".tmp-")]
