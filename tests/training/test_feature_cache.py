"""Cached backbone features: the head trained on them equals the dygraph frozen run, resumes, exports the whole network."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_config
from helpers import read_rows
from usernets import LENET5

from hapi_runner.errors import UsageError


def _fit(data_root, tmp_path, name, **overrides):
    from hapi_runner import Runner

    values = dict(model="lenet", freeze_backbone=True, augment=False, epochs=2, export=False, save_dir=str(tmp_path / name))
    values.update(overrides)
    runner = Runner(tiny_config(data_root, tmp_path, **values))
    return runner, runner.fit()


def _weights(runner):
    return {k: v.numpy() for k, v in runner.network.state_dict().items()}


def test_the_head_on_cached_features_equals_the_dygraph_frozen_run_and_exports_the_whole_network(data_root, tmp_path, capsys):
    from hapi_runner.deploy import evaluate_run

    plain, plain_results = _fit(data_root, tmp_path, "plain", feature_cache=False)
    assert "computing the frozen layers' features" not in capsys.readouterr().out
    cached, cached_results = _fit(data_root, tmp_path, "cached", export=True)
    out = capsys.readouterr().out
    assert "computing the frozen layers' features once (48 train images x 1 view, 16 eval images)" in out
    for before, after in zip(plain.history.rows, cached.history.rows):
        assert after["eval_acc_top1"] == before["eval_acc_top1"]
        assert after["train_loss"] == pytest.approx(before["train_loss"], rel=1e-5)
    expected, got = _weights(plain), _weights(cached)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-6, err_msg=key)
    from hapi_runner import Runner

    untrained = Runner(tiny_config(data_root, tmp_path, model="lenet", freeze_backbone=True, save_dir=str(tmp_path / "new")))
    assert not np.allclose(got["fc.2.weight"], _weights(untrained)["fc.2.weight"])  # the head did train
    np.testing.assert_array_equal(got["features.0.weight"], _weights(untrained)["features.0.weight"])
    # The export is the whole network, images in, and agrees with the trained weights.
    assert cached_results["export"]["top1_agreement"] == 1.0
    run = tmp_path / "cached"
    by_graph = evaluate_run(str(run), engine="inference", threads="1")
    assert by_graph["acc_top1"] == pytest.approx(cached_results["final_eval"]["acc_top1"])
    assert (tmp_path / "plain" / "metrics.csv").read_text() != ""


def _fresh_lenet():
    import paddle

    from hapi_runner.model.builtin import build_model

    paddle.seed(0)
    return build_model("lenet", 10, 1, 28, "default")


def test_a_resumed_cached_run_continues_as_if_never_stopped(data_root, tmp_path, capsys):
    whole, _ = _fit(data_root, tmp_path, "whole", epochs=3)
    _fit(data_root, tmp_path, "parts", epochs=2)
    capsys.readouterr()
    resumed, _ = _fit(data_root, tmp_path, "parts", epochs=3, resume=str(tmp_path / "parts"))
    out = capsys.readouterr().out
    assert "resuming after epoch 2 of 3" in out and "on cached features from" in out
    assert [int(r["epoch"]) for r in read_rows(tmp_path / "parts")] == [1, 2, 3]
    assert read_rows(tmp_path / "parts")[-1]["eval_acc_top1"] == read_rows(tmp_path / "whole")[-1]["eval_acc_top1"]
    for key, value in _weights(whole).items():
        np.testing.assert_allclose(_weights(resumed)[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def test_views_are_the_evaluation_transform_then_augmented_ones(data_root, tmp_path):
    runner, _ = _fit(data_root, tmp_path, "views", augment=True, train_augment="crop-flip", feature_views=3, epochs=1)
    folder = runner.features.folder
    train = np.load(os.path.join(folder, "train.npy"))
    assert train.shape[:2] == (48, 3) and np.load(os.path.join(folder, "eval.npy")).shape[:2] == (16, 1)
    assert not np.allclose(train[:, 0], train[:, 1]) and not np.allclose(train[:, 1], train[:, 2])
    meta = json.loads(open(os.path.join(folder, "meta.json")).read())
    assert meta["views"] == 3 and meta["train_images"] == 48
    # View 0 is what the frozen layers give for the evaluation transform of the training images.
    import paddle

    from hapi_runner.model.head_split import head_removed

    images = runner.eval_data.transform(runner.train_data.images[:4])
    runner.network.eval()
    with paddle.no_grad(), head_removed(runner.network, "fc"):
        expected = runner.network(paddle.to_tensor(images)).numpy()
    np.testing.assert_allclose(train[:4, 0], expected, rtol=1e-4, atol=1e-5)


def test_feature_views_pick_the_view_of_the_epoch():
    from hapi_runner.training.feature_cache import FeatureViews

    features = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    views = FeatureViews(3)
    for epoch, view in ((0, 0), (1, 1), (2, 2), (3, 0), (7, 1)):
        views.set_epoch(epoch)
        np.testing.assert_array_equal(views(features), features[:, view])


def test_the_key_follows_the_frozen_weights_and_the_transform_not_the_head():
    from hapi_runner.datasets.pipeline import BatchTransform
    from hapi_runner.training.feature_cache import describe_transform, feature_key

    network = _fresh_lenet()

    class Data:
        labels = np.arange(4)
        images = np.zeros((4, 1, 28, 28), np.uint8)

    views = [(BatchTransform((0.5,), (0.2,)), None)]
    key = feature_key(network, "fc", "lenet", [(Data, views)])
    network.fc[2].weight.set_value(network.fc[2].weight.numpy() + 1)
    assert feature_key(network, "fc", "lenet", [(Data, views)]) == key
    other = [(BatchTransform((0.5,), (0.3,)), None)]
    assert feature_key(network, "fc", "lenet", [(Data, other)]) != key
    network.features[0].weight.set_value(network.features[0].weight.numpy() + 1)
    assert feature_key(network, "fc", "lenet", [(Data, views)]) != key
    moved = BatchTransform((0.5,), (0.2,))
    moved.set_epoch(5)
    assert describe_transform(moved) == describe_transform(views[0][0])


def test_a_users_network_trains_its_named_head_and_refuses_a_head_that_is_not_last(data_root, tmp_path):
    path = tmp_path / "net.py"
    path.write_text(LENET5.replace("WIDTH", "32"))
    model = f"{path}:LeNet5"
    runner, results = _fit(data_root, tmp_path, "own", model=model, image_size=32, head="fc2", epochs=1)
    assert runner.features.head == "fc2" and runner.features.shape == [32]
    assert results["final_eval"]["acc_top1"] is not None
    with pytest.raises(UsageError, match="output is not its head 'fc1' applied to the output of the layers before it"):
        _fit(data_root, tmp_path, "middle", model=model, image_size=32, head="fc1", epochs=1)
    assert not (tmp_path / "middle").exists()  # refused before a run folder was made


def test_mixing_falls_back_to_the_frozen_layers_on_every_batch(data_root, tmp_path, capsys):
    runner, _ = _fit(data_root, tmp_path, "mixed", mixup=0.2, epochs=1)
    assert runner.features is None
    assert "no feature cache): --mixup/--cutmix mix images, not features" in capsys.readouterr().out


@pytest.mark.parametrize("views", [0, 65, "2"])
def test_feature_views_outside_1_to_64_are_refused(views):
    from hapi_runner import TrainConfig

    with pytest.raises(UsageError, match="feature_views must be"):
        TrainConfig(feature_views=views)


def test_the_flags_reach_the_config():
    from hapi_runner.cli.app import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(
        ["train", "--freeze-backbone", "--no-feature-cache", "--feature-views", "4", "--head", "classifier"]))
    assert (config.feature_cache, config.feature_views, config.head) == (False, 4, "classifier")
    defaults = config_from_args(build_parser().parse_args(["train"]))
    assert (defaults.feature_cache, defaults.feature_views, defaults.head) == (True, 1, None)


def test_a_folder_run_reuses_its_features_until_an_image_changes(tmp_path, capsys):
    import time

    from folder_images import class_tree

    from hapi_runner import Runner, TrainConfig

    root = tmp_path / "images"
    paths = class_tree(root, 4)
    class_tree(root, 2, split="val", offset=30, nested=False, junk=False)

    def fit(name):
        config = TrainConfig(model="lenet", dataset="folder", data_dir=str(root), image_size=28, channels=1, epochs=1,
                             batch_size=8, freeze_backbone=True, export=False, report=False, verbose=0, threads="1",
                             save_dir=str(tmp_path / name))
        runner = Runner(config)
        runner.fit()
        return runner.features

    first = fit("one")
    assert not first.reused and np.load(os.path.join(first.folder, "train.npy")).shape[:2] == (12, 1)
    again = fit("two")
    assert again.reused and again.folder == first.folder
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + int(time.time())))
    assert fit("three").folder != first.folder
    assert capsys.readouterr().out.count("computing the frozen layers' features once (12 train images") == 2
