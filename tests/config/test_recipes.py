"""Recipes: their values, and their place in the precedence defaults < recipe < config file < flags."""

import dataclasses

import pytest

from hapi_runner import TrainConfig, UsageError
from hapi_runner.cli.app import build_parser, config_from_args, main
from hapi_runner.config.train_config import field_names, from_mapping
from hapi_runner.config.recipes import ABOUT, FAST, PADDLE_FIRST_EPOCHS, RECIPES, SEED, recipe_values


def parse(argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_seed_is_seed_002_exactly():
    assert SEED == {"optimizer": "momentum", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64,
                    "epochs": 50, "lr_schedule": "constant", "warmup_epochs": 0, "augment": False}


def test_fast_values():
    assert FAST == {"optimizer": "momentum", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64,
                    "epochs": 6, "lr_schedule": "cosine", "warmup_epochs": 1}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_is_documented_valid_and_applied(name):
    assert set(RECIPES[name]) <= set(field_names()) and ABOUT[name]
    config = TrainConfig.from_recipe(name)
    assert config.recipe == name
    assert {key: getattr(config, key) for key in RECIPES[name]} == RECIPES[name]
    untouched = set(field_names()) - set(RECIPES[name]) - {"recipe"}
    defaults = TrainConfig()
    assert all(getattr(config, key) == getattr(defaults, key) for key in untouched)
    assert parse(["--recipe", name]) == config


def test_accurate_resnet18_trains_as_its_figure_was_measured_with_paddles_first_epochs(tmp_path):
    config = TrainConfig.from_recipe("accurate-resnet18")
    assert {key: getattr(config, key) for key in PADDLE_FIRST_EPOCHS} == PADDLE_FIRST_EPOCHS
    assert (TrainConfig().zero_init_residual, TrainConfig().drop_last) == (True, True)  # the defaults differ
    path = tmp_path / "c.yaml"
    path.write_text("zero-init-residual: true\n")
    assert parse(["--recipe", "accurate-resnet18", "--config", str(path), "--conv-init", "kaiming-fan-out"]).to_dict() \
        == {**config.to_dict(), "zero_init_residual": True, "conv_init": "kaiming-fan-out"}


def test_recipe_values_is_a_copy():
    values = recipe_values("fast")
    values["lr"] = 99.0
    assert FAST["lr"] == 0.05


def test_config_file_beats_the_recipe_and_flags_beat_both(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.3\nwarmup-epochs: 2\n")
    c = parse(["--recipe", "fast", "--config", str(path), "--warmup-epochs", "3"])
    assert (c.recipe, c.lr, c.warmup_epochs, c.lr_schedule, c.epochs) == ("fast", 0.3, 3, "cosine", FAST["epochs"])


def test_a_recipe_named_in_the_config_file_sits_beneath_the_file_and_the_flag_recipe_replaces_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("recipe: seed\nlr: 0.2\n")
    from_file = parse(["--config", str(path)])
    assert (from_file.recipe, from_file.lr, from_file.epochs, from_file.augment) == ("seed", 0.2, 50, False)
    flag = parse(["--config", str(path), "--recipe", "fast"])
    assert (flag.recipe, flag.lr, flag.epochs, flag.augment) == ("fast", 0.2, FAST["epochs"], True)


def test_explicit_flag_equal_to_the_default_still_beats_the_recipe():
    assert parse(["--recipe", "fast", "--lr-schedule", "constant"]).lr_schedule == "constant"


def test_replace_applies_a_new_recipe_under_the_other_changes():
    c = TrainConfig(model="resnet18").replace(recipe="fast", epochs=2)
    assert (c.model, c.recipe, c.lr, c.epochs) == ("resnet18", "fast", FAST["lr"], 2)
    assert c.replace(lr=0.05).lr == 0.05  # the same recipe again is not re-applied


def test_the_resolved_config_round_trips_through_config_json():
    c = parse(["--recipe", "fast", "--lr", "0.2"])
    assert from_mapping(c.to_dict()) == c


def test_unknown_recipe_names_the_choices(tmp_path, capsys):
    with pytest.raises(UsageError, match="recipe 'fsat' is not known.*Did you mean 'fast'"):
        TrainConfig(recipe="fsat")
    path = tmp_path / "c.yaml"
    path.write_text("recipe: fsat\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "Did you mean 'fast'" in capsys.readouterr().err
    assert main(["train", "--recipe", "slow"]) == 2


def test_the_constructor_records_the_name_only():
    c = TrainConfig(recipe="fast")
    assert (c.recipe, c.lr) == ("fast", TrainConfig().lr)
    assert dataclasses.replace(c, recipe=None).recipe is None
