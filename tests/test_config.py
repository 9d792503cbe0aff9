"""TrainConfig, config files and the CLI's mapping onto them."""

import json

import pytest

from hapi_runner import TrainConfig, UsageError
from hapi_runner.cli import build_parser, config_from_args
from hapi_runner.config import field_names, from_mapping, load_config_file

pytestmark = pytest.mark.smoke  # also run against Paddle 2.6 by .ci/run


def parse(argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_defaults_are_seed_002_optimiser_on_embedded_data():
    c = TrainConfig()
    assert (c.model, c.dataset) == ("lenet", "fashion-mnist-mini")
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay, c.batch_size) == ("momentum", 0.01, 0.9, 1e-4, 64)
    assert parse([]) == c


def test_every_train_flag_maps_to_a_field():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions} - {"help", "config", "debug", "json", "list_models", "list_datasets"}
    assert dests <= set(field_names())
    assert set(field_names()) - dests == set()


def test_flags_override_config_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet18\nbatch-size: 32\nlr: 0.1\n")
    c = parse(["--config", str(path), "--lr", "0.05", "--no-augment", "--lr-step-epochs", "3", "6", "--lr-schedule", "multistep"])
    assert (c.model, c.batch_size, c.lr, c.augment, c.lr_step_epochs) == ("resnet18", 32, 0.05, False, [3, 6])


def test_json_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 3, "dataset": "cifar10"}))
    assert load_config_file(str(path)) == {"epochs": 3, "dataset": "cifar10"}
    assert parse(["--config", str(path)]).epochs == 3


@pytest.mark.parametrize("text, match", [
    ("datset: mnist\n", "unknown key 'datset'.*Did you mean 'dataset'"),
    ("epochs: [1\n", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping"),
    ("epochs: zero\n", "epochs must be an integer"),
])
def test_bad_config_files(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        parse(["--config", str(path)])


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize("values, match", [
    ({"model": "resnet51"}, "model 'resnet51' is not known.*Did you mean 'resnet50'"),
    ({"dataset": "cifar"}, "dataset 'cifar' is not known.*Did you mean"),
    ({"epochs": 0}, "epochs must be >= 1, got 0"),
    ({"batch_size": -2}, "batch_size must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0.0"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": "fast"}, "lr must be a finite number"),
    ({"momentum": 1.5}, "momentum must be >= 0.0 and < 1.0"),
    ({"val_split": 1.0}, "val_split must be"),
    ({"device": "tpu"}, "device 'tpu' is not valid"),
    ({"threads": "0"}, "threads '0' is not valid"),
    ({"amp": "O3"}, "amp 'O3' is not known"),
    ({"gpu": True, "device": "cpu"}, "contradict"),
    ({"lr_schedule": "multistep", "lr_step_epochs": [5, 2]}, "increasing"),
    ({"lr_gamma": 1.5}, "lr_gamma must be > 0.0 and < 1.0"),
])
def test_bad_values_name_the_field(values, match):
    with pytest.raises(UsageError, match=match):
        from_mapping(values)


def test_replace_checks_again():
    c = TrainConfig()
    assert c.replace(epochs=3).epochs == 3
    with pytest.raises(UsageError):
        c.replace(epochs=-1)


def test_fingerprint_depends_on_the_network_shape_only():
    a = TrainConfig(model="resnet18", dataset="cifar10")
    assert a.fingerprint() == a.replace(lr=0.1, epochs=9).fingerprint()
    assert a.fingerprint() != a.replace(dataset="cifar100").fingerprint()
    assert a.fingerprint() != a.replace(stem="cifar").fingerprint()


def test_yaml_without_pyyaml_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\n")
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)  # what `import yaml` sees when PyYAML is not installed
    with pytest.raises(UsageError, match="reading YAML needs PyYAML: pip install pyyaml") as info:
        load_config_file(str(path))
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize("name, text, cause", [("c.yaml", "epochs: [1\n", "YAMLError"), ("c.json", "{a", "JSONDecodeError")])
def test_parse_errors_keep_their_cause(tmp_path, name, text, cause):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError, match="is not valid") as info:
        load_config_file(str(path))
    assert cause in [c.__name__ for c in type(info.value.__cause__).__mro__]
