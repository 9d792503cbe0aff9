"""Property-based tests of the CLI's front door: random argument lists and random config files.

Whatever comes in, the parser plus config resolution give a valid TrainConfig or a UsageError (exit 2),
and ``main`` never shows a traceback. Training is never reached: ``Runner`` is replaced by a stub.
"""

import argparse
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hapi_runner.cli.app import PROG, build_parser, build_train_parser, config_from_args, main
from hapi_runner.config.train_config import TrainConfig, field_names, from_mapping, load_config_file
from hapi_runner.errors import HapiRunnerError, UsageError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

# Every option of `train` but the ones that only print (help) or that show tracebacks on purpose (--debug).
_OPTIONS = sorted({s for a in build_train_parser(argparse.ArgumentParser(add_help=False))._actions
                   for s in a.option_strings} - {"--debug"})
# Values that have broken CLIs before: edges of ranges, non-finite and huge numbers, odd digits, empty text.
_SPECIAL = ["0", "1", "-1", "0.5", "1.5", "nan", "inf", "-inf", "1e400", "1e-3", str(2 ** 64), "9" * 400, "²", "١",
            "", " ", "auto", "cpu", "gpu", "gpu:0", "gpu:x", "O1", "o2", "lenet", "resnet50", "mnist", "synthetic",
            "cifar10", "cosine", "multistep", "true", "none", "null", "--", "-", "\n", "a\nb", "/", "."]
value_tokens = st.one_of(st.sampled_from(_SPECIAL), st.integers(-10 ** 30, 10 ** 30).map(str),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8))
tokens = st.lists(st.one_of(st.sampled_from(_OPTIONS), value_tokens), max_size=14)


def resolve(argv):
    """The CLI's own parse and resolution of ``train`` arguments."""
    return config_from_args(build_parser().parse_args(["train", *argv]))


@FUZZ
@given(argv=tokens)
def test_random_arguments_give_a_config_or_a_usage_error(argv):
    try:
        config = resolve(argv)
    except UsageError as exc:
        assert str(exc).strip()
        return
    assert isinstance(config, TrainConfig)
    config.validate()  # what came out is valid, and checking it again changes nothing
    assert config == TrainConfig(**config.to_dict())


# --- config files ---------------------------------------------------------------------------------------

_KEYS = field_names()
keys = st.one_of(st.sampled_from(_KEYS), st.sampled_from(_KEYS).map(lambda k: k.replace("_", "-")), st.text(max_size=10))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2 ** 80, 2 ** 80).map(lambda i: i * 10 ** 300),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10), st.sampled_from(_SPECIAL))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
documents = st.one_of(st.dictionaries(keys, values, max_size=6), values)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-config")


def _dump(document, suffix):
    if suffix == ".json":
        return json.dumps(document, allow_nan=True)
    return yaml.safe_dump(document, allow_unicode=True)


def _load_and_resolve(path):
    try:
        return from_mapping(load_config_file(str(path)), source=f"config file '{path}'")
    except UsageError as exc:
        assert str(exc).strip()
        return None


@FUZZ
@given(document=documents, suffix=st.sampled_from([".json", ".yaml", ".yml"]))
def test_random_config_documents_give_a_config_or_a_usage_error(folder, document, suffix):
    path = folder / f"config{suffix}"
    try:
        text = _dump(document, suffix)
    except (ValueError, yaml.YAMLError, OverflowError):  # not representable in that format: nothing to test
        return
    path.write_text(text, encoding="utf-8")
    config = _load_and_resolve(path)
    assert config is None or isinstance(config, TrainConfig)


@FUZZ
@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
       suffix=st.sampled_from([".json", ".yaml"]))
def test_random_config_text_gives_a_config_or_a_usage_error(folder, text, suffix):
    path = folder / f"raw{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    config = _load_and_resolve(path)
    assert config is None or isinstance(config, TrainConfig)


def test_yaml_reads_exponent_floats_as_numbers(folder):
    """PyYAML alone reads 1e-3 as the string '1e-3' (YAML 1.1); a config file means the number."""
    path = folder / "lr.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5E-4\nmomentum: .9\nmodel: 1e3x\n")
    assert load_config_file(str(path)) == {"lr": 0.001, "weight_decay": 0.0005, "momentum": 0.9, "model": "1e3x"}


# --- main, end to end, with training replaced --------------------------------------------------------------

class Accepted(HapiRunnerError):
    """What the stub Runner raises: the arguments passed every check."""

    exit_code = 97


class StubRunner:
    def __init__(self, config, **overrides):
        assert isinstance(config, TrainConfig)
        raise Accepted(f"accepted {config.model} on {config.dataset}")


@pytest.fixture
def no_training(monkeypatch):
    import hapi_runner.training.runner

    monkeypatch.setattr(hapi_runner.training.runner, "Runner", StubRunner)


@FUZZ
@given(argv=tokens, with_config=st.booleans(), document=st.dictionaries(keys, values, max_size=4))
def test_main_never_shows_a_traceback(no_training, folder, capsys, argv, with_config, document):
    if with_config:
        path = folder / "main.json"
        path.write_text(json.dumps(document, allow_nan=True))
        argv = ["--config", str(path), *argv]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 2, Accepted.exit_code), err
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    if code == 0:  # --list-models, --list-datasets or --help: nothing wrong to say
        assert errors == [] and out
    else:
        assert len(errors) == 1 and len([l for l in err.splitlines() if l.strip()]) == 1, err
        assert errors[0].startswith(f"{PROG}: error: accepted ") == (code == Accepted.exit_code)
