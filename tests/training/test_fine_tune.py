"""--fine-tune F,U: the head on a frozen backbone, then every layer; one run folder, resumable in either phase."""

import shutil

import numpy as np
import pytest

from conftest import tiny_config
from helpers import read_rows

from hapi_runner.errors import UsageError


def _runner(data_root, tmp_path, name, **overrides):
    from hapi_runner import Runner

    values = dict(model="lenet", fine_tune=[2, 2], backbone_lr_mult=0.1, lr_schedule="cosine", export=False,
                  save_dir=str(tmp_path / name))
    values.update(overrides)
    return Runner(tiny_config(data_root, tmp_path, **values))


def _weights(runner):
    return {k: v.numpy() for k, v in runner.network.state_dict().items()}


@pytest.fixture(scope="module")
def whole_run(data_root, tmp_path_factory):
    """An uninterrupted --fine-tune 2,2 run, every epoch's checkpoint kept."""
    tmp_path = tmp_path_factory.mktemp("whole")
    runner = _runner(data_root, tmp_path, "run")
    runner.fit()
    return tmp_path / "run", _weights(runner)


def test_the_frozen_phase_trains_the_head_alone_and_the_unfrozen_phase_every_layer(whole_run):
    run, _ = whole_run
    rows = read_rows(run)
    assert [(int(r["epoch"]), r["phase"]) for r in rows] == [(1, "frozen"), (2, "frozen"), (3, "unfrozen"), (4, "unfrozen")]
    # Each phase's cosine starts at --lr (0.01) and ends at 0 with its own last epoch.
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.005, 0.0, 0.005, 0.0])
    import paddle

    weights = {e: paddle.load(str(run / "checkpoints" / f"epoch_{e}" / "model.pdparams")) for e in (2, 4)}
    first = np.asarray(weights[2]["features.0.weight"])
    untrained = _runner_weights_before_training(run)
    np.testing.assert_array_equal(first, untrained["features.0.weight"])  # frozen in phase 1
    assert not np.allclose(np.asarray(weights[2]["fc.2.weight"]), untrained["fc.2.weight"])
    assert not np.allclose(np.asarray(weights[4]["features.0.weight"]), first)  # trained in phase 2


def _runner_weights_before_training(run):
    from hapi_runner import Runner
    from hapi_runner.config.train_config import read_run_config

    config = read_run_config(str(run)).replace(save_dir=str(run.parent / "fresh"))
    return _weights(Runner(config))


@pytest.mark.parametrize("epoch", [1, 2, 3], ids=["in the frozen phase", "between the phases", "in the unfrozen phase"])
def test_a_resumed_run_ends_as_the_uninterrupted_one(whole_run, tmp_path, epoch, capsys):
    from hapi_runner import Runner
    from hapi_runner.config.train_config import read_run_config

    run, expected = whole_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    config = read_run_config(str(copy)).replace(resume=str(copy / "checkpoints" / f"epoch_{epoch}"), save_dir=None)
    runner = Runner(config)
    runner.fit()
    out = capsys.readouterr().out
    assert f"resuming after epoch {epoch} of 4" in out
    assert ("phase 1 of 2" in out) == (epoch < 2) and "phase 2 of 2, epochs" in out
    for key, value in expected.items():
        np.testing.assert_allclose(_weights(runner)[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    assert [r["phase"] for r in read_rows(copy)] == ["frozen", "frozen", "unfrozen", "unfrozen"]
    assert [r["eval_acc_top1"] for r in read_rows(copy)] == [r["eval_acc_top1"] for r in read_rows(run)]


@pytest.mark.parametrize("value, message", [
    ("3", "fine_tune must be two epoch counts F,U such as 3,2"),
    ("3,x", "fine_tune must be two epoch counts F,U such as 3,2"),
    ([0, 2], "fine_tune must be"),
])
def test_a_malformed_fine_tune_is_refused(value, message):
    from hapi_runner import TrainConfig

    with pytest.raises(UsageError, match=message):
        TrainConfig(fine_tune=value)


def test_a_malformed_flag_is_one_line_and_exit_2(capsys):
    from hapi_runner.cli.app import main

    assert main(["train", "--fine-tune", "3"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("hapi-runner: error: fine_tune must be two epoch counts F,U such as 3,2 "
                           "(F frozen, then U unfrozen), got '3'.")


def test_fine_tune_sets_the_epochs_and_excludes_freeze_backbone():
    from hapi_runner import TrainConfig
    from hapi_runner.cli.app import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["train", "--fine-tune", "3,2"]))
    assert config.fine_tune == [3, 2] and config.epochs == 5
    with pytest.raises(UsageError, match="drop --freeze-backbone"):
        TrainConfig(fine_tune="3,2", freeze_backbone=True)


def _checkpoint_with_classes(folder, names):
    """A run's checkpoint folder whose state.json names ``names`` as its classes; returns its weights' path."""
    import json

    import paddle

    from hapi_runner.model.builtin import build_model
    from hapi_runner.runfolder.fingerprint import class_names_text

    folder.mkdir(parents=True)
    paddle.save(build_model("lenet", len(names), 1, 28).state_dict(), str(folder / "model.pdparams"))
    (folder / "state.json").write_text(json.dumps({"fingerprint": {"class_names": class_names_text(names)}}))
    return str(folder / "model.pdparams")


def test_the_head_resets_when_the_weights_run_had_other_classes(tmp_path):
    from hapi_runner.model.finetune import head_reset_reason

    weights = _checkpoint_with_classes(tmp_path / "src" / "checkpoints" / "epoch_2", ["bag", "coat", "dress"])
    assert head_reset_reason(weights, ["bag", "coat", "dress"]) is None
    assert head_reset_reason(weights, None) is None  # this run's classes unknown
    reason = head_reset_reason(weights, ["shirt", "sneaker", "boot"])
    assert reason == "the weights' run had the classes 'bag', 'coat', 'dress', this run has 'shirt', 'sneaker', 'boot'"
    digits = [f"digit_{d}" for d in range(10)]
    assert head_reset_reason(weights, digits).endswith(
        "this run has 'digit_0', 'digit_1', 'digit_2', 'digit_3', 'digit_4', ... (10 in all)")  # cut between names
    bare = tmp_path / "plain.pdparams"
    shutil.copy(weights, bare)
    assert head_reset_reason(str(bare), ["shirt", "sneaker", "boot"]) is None  # no state.json beside it


@pytest.mark.parametrize("classes, flag, reset", [(("bag", "coat", "dress"), False, False),
                                                  (("bag", "coat", "dress"), True, True),
                                                  (("shirt", "sneaker", "boot"), False, True)],
                         ids=["same classes: the head loads", "--reset-head", "other classes: the head resets"])
def test_a_runner_starts_the_head_afresh_only_when_it_should(tmp_path, capsys, classes, flag, reset):
    import paddle

    from folder_images import class_tree
    from hapi_runner import Runner, TrainConfig

    weights = _checkpoint_with_classes(tmp_path / "src" / "checkpoints" / "epoch_1", list(classes))
    data = tmp_path / "images"
    class_tree(data, 4, junk=False)
    class_tree(data, 2, split="val", offset=20, nested=False, junk=False)
    config = TrainConfig(model="lenet", dataset="folder", data_dir=str(data), channels=1, image_size=28, epochs=1,
                         batch_size=8, pretrained=weights, reset_head=flag, freeze_backbone=True, export=False,
                         report=False, verbose=0, threads="1", save_dir=str(tmp_path / "run"))
    runner = Runner(config)
    held = paddle.load(weights)
    same_head = np.array_equal(runner.network.fc[2].weight.numpy(), np.asarray(held["fc.2.weight"]))
    assert same_head is not reset
    np.testing.assert_array_equal(runner.network.features[0].weight.numpy(), np.asarray(held["features.0.weight"]))
    said = capsys.readouterr().out
    assert ("starts from a fresh initialisation" in said) is (reset and not flag)


def test_reset_head_needs_pretrained_weights():
    from hapi_runner import TrainConfig

    with pytest.raises(UsageError, match="--reset-head starts the classifier afresh"):
        TrainConfig(reset_head=True)
