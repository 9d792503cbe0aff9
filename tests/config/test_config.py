"""TrainConfig, config files and the CLI's mapping onto them."""

import json

import pytest

from hapi_runner import TrainConfig, UsageError
from hapi_runner.cli.app import build_parser, config_from_args
from hapi_runner.config.train_config import field_names, from_mapping, load_config_file

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
    ({"train_augment": "mirror"}, "train_augment 'mirror' is not known; choose one of: none, flip, crop-flip"),
    ({"train_augment": "flip", "augment": False}, "--train-augment flip and --no-augment contradict"),
    ({"train_augment": "flip", "dataset": "folder", "data_dir": "."}, "--train-augment applies to the built-in datasets"),
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


def train_help(capsys):
    from hapi_runner.cli.app import main

    assert main(["train", "--help"]) == 0
    return capsys.readouterr().out


def help_entry(text, flag):
    """The help of one flag in --help output, its wrapped lines joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {flag} "))
    entry = [lines[start]]
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith("  -"):
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


@pytest.mark.parametrize("flag, name", [("--epochs", "epochs"), ("--batch-size", "batch_size"), ("--lr", "lr"),
                                        ("--optimizer", "optimizer"), ("--lr-step-epochs", "lr_step_epochs"),
                                        ("--output-root", "output_root"), ("--monitor", "monitor"),
                                        ("--plateau-patience", "plateau_patience"), ("--weight-decay", "weight_decay")])
def test_help_shows_each_fields_real_default(capsys, flag, name):
    value = getattr(TrainConfig(), name)
    shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    assert help_entry(train_help(capsys), flag).endswith(f"default: {shown}")


def test_help_follows_a_changed_default(capsys, monkeypatch):
    import dataclasses

    epochs = next(f for f in dataclasses.fields(TrainConfig) if f.name == "epochs")
    monkeypatch.setattr(epochs, "default", 11)
    assert help_entry(train_help(capsys), "--epochs").endswith("epochs in total; default: 11")


def test_every_field_has_one_flag_and_switches_are_named_by_their_default():
    import dataclasses

    from hapi_runner.cli.app import flag_of

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    by_dest = {a.dest: a.option_strings for a in train._actions}
    for item in dataclasses.fields(TrainConfig):
        assert by_dest[item.name] == [flag_of(item)]
        if item.default is True:
            assert flag_of(item).startswith("--no-")
    assert flag_of(next(f for f in dataclasses.fields(TrainConfig) if f.name == "use_shared_memory")) == "--no-shared-memory"
    assert parse(["--no-shared-memory", "--gpu", "--no-augment"]).use_shared_memory is False


@pytest.mark.parametrize("argv, match", [
    (["evaluate", "RUN", "--threads", "many"], "threads 'many' is not valid"),
    (["predict", "RUN", "x.png", "--threads", "0"], "threads '0' is not valid"),
    (["evaluate", "RUN", "--device", "npu"], "device 'npu' is not valid"),
    (["predict", "RUN", "x.png", "--device", "tpu"], "device 'tpu' is not valid"),
    (["evaluate", "RUN", "--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["evaluate", "RUN", "--batch-size", "two"], "argument --batch-size: invalid int value"),
])
def test_other_commands_check_the_options_they_share_with_train_as_train_does(capsys, argv, match):
    from hapi_runner.cli.app import main

    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_predict_threads_takes_n_or_auto(monkeypatch, capsys):
    from hapi_runner.cli import app as cli
    from hapi_runner.deploy import predict

    seen = []
    monkeypatch.setattr(predict, "predict_files", lambda model, images, **kw: seen.append(kw["threads"]) or [])
    for value in ("3", "auto"):
        assert cli.main(["predict", "RUN", "x.png", "--threads", value, "--json"]) == 0
    assert seen == [3, None]


def fake_run(tmp_path, **fields):
    run = tmp_path / "run"
    (run / "checkpoints" / "epoch_1").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**TrainConfig().to_dict(), **fields}))
    return run


def test_resume_keeps_the_runs_recipe_values_unless_another_recipe_is_named(tmp_path):
    run = fake_run(tmp_path, recipe="fast", epochs=3, lr=0.05)
    assert parse(["--resume", str(run), "--recipe", "fast"]).epochs == 3  # the run's own value, not the recipe's 6
    assert parse(["--resume", str(run), "--recipe", "seed"]).epochs == 50
    assert parse(["--resume", str(run)]).lr == 0.05


def test_resume_from_a_run_with_an_ignored_data_dir_drops_it(tmp_path):
    run = fake_run(tmp_path, data_dir="/was/ignored")  # an older version recorded a --data-dir fashion-mnist-mini never read
    assert parse(["--resume", str(run)]).data_dir is None


def test_a_damaged_run_config_is_named(tmp_path):
    from hapi_runner import HapiRunnerError

    run = fake_run(tmp_path)
    (run / "config.json").write_text('{"epochs": ')
    with pytest.raises(HapiRunnerError, match="config.json cannot be read .*the run folder is damaged"):
        parse(["--resume", str(run)])


def test_every_alias_names_a_setting_and_wins_over_spelling():
    from hapi_runner.config.checks import ALIASES, suggest_name

    assert sorted(set(ALIASES.values()) - set(field_names())) == []
    for alias, name in ALIASES.items():
        assert suggest_name(alias, field_names()) == f" Did you mean '{name}'?"
    assert suggest_name("early_stoping_patience", field_names()) == " Did you mean 'early_stopping_patience'?"
