"""config/checks.py: the one wording of every argument check (what is wrong, what is allowed), sizes, durations, devices."""

import pytest

from hapi_runner.config.checks import (check_choice, check_int, check_number, device_kind_index, parse_device,
                                       parse_duration, parse_size, parse_threads)
from hapi_runner.errors import UsageError

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize("value, minimum, maximum, match", [
    ("3", 1, None, r"^batch_size must be an integer >= 1, got '3'\.$"),
    (True, 1, None, r"must be an integer >= 1, got True"),  # a bool is not a count
    (0, 1, None, r"^batch_size must be >= 1, got 0\.$"),
    (9, 1, 8, r"^batch_size must be >= 1 and <= 8, got 9\.$"),
    (2.0, None, None, r"^batch_size must be an integer, got 2\.0\.$"),
])
def test_check_int_names_value_and_bounds(value, minimum, maximum, match):
    with pytest.raises(UsageError, match=match):
        check_int("batch_size", value, minimum, maximum)


def test_check_int_returns_value_and_cuts_huge_reprs():
    assert check_int("epochs", 8, 1, 8) == 8
    with pytest.raises(UsageError, match=r"\.\.\. \(\d+ characters\)\.$") as info:
        check_int("epochs", "x" * 500)
    assert len(str(info.value)) < 150


@pytest.mark.parametrize("value, kwargs, match", [
    (0.0, dict(low=0.0, low_open=True), r"^lr must be > 0\.0, got 0\.0\.$"),
    (1.0, dict(low=0.0, high=1.0, high_open=True), r"^lr must be >= 0\.0 and < 1\.0, got 1\.0\.$"),
    (float("nan"), {}, r"^lr must be a finite number, got nan\.$"),
    (10 ** 400, {}, r"must be a finite number"),  # beyond float range
    ("0.1", {}, r"got '0\.1'"),
])
def test_check_number_refusals(value, kwargs, match):
    with pytest.raises(UsageError, match=match):
        check_number("lr", value, **kwargs)


@pytest.mark.parametrize("value, kwargs", [(0.5, dict(low=0.0, high=1.0)), (0.0, dict(low=0.0)), (1, dict(high=1))])
def test_check_number_accepts_closed_bounds(value, kwargs):
    assert check_number("x", value, **kwargs) == value


def test_check_choice_lists_choices_and_suggests_closest():
    assert check_choice("optimizer", "adam", ["sgd", "adam"]) == "adam"
    with pytest.raises(UsageError, match=r"^optimizer 'adamm' is not known; choose one of: sgd, adam, adamw\. "
                                         r"Did you mean 'adam'\?$"):
        check_choice("optimizer", "adamm", ["sgd", "adam", "adamw"])
    with pytest.raises(UsageError, match=r"choose one of: sgd, adam\.$"):  # nothing close: no suggestion
        check_choice("optimizer", "zzzzzz", ["sgd", "adam"])


@pytest.mark.parametrize("value, expected", [
    (None, None), (0, 0), (1234, 1234), ("20G", 20 << 30), ("500m", 500 << 20), ("1.5T", int(1.5 * (1 << 40))),
    ("2KiB", 2048), (" 7MB ", 7 << 20), ("64", 64), (".5K", 512),
])
def test_parse_size(value, expected):
    assert parse_size("cache_limit", value) == expected


@pytest.mark.parametrize("value, match", [
    ("20X", r"^cache_limit must be a size such as 20G, 500M or 0 .*got '20X'\.$"),
    (-1, r"^cache_limit must be >= 0 \(bytes; 0 never caches\), got -1\.$"),
    (1.5, r"got 1\.5"), ("", r"got ''"),
])
def test_parse_size_refusals(value, match):
    with pytest.raises(UsageError, match=match):
        parse_size("cache_limit", value)


@pytest.mark.parametrize("value, seconds", [(None, None), (90, 90.0), ("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0),
                                            ("2H", 7200.0), (0.5, 0.5)])
def test_parse_duration(value, seconds):
    assert parse_duration("time_budget", value) == seconds


@pytest.mark.parametrize("value", [0, "0s", "-5m", "10d", True, "abc", [1]])
def test_parse_duration_refusals(value):
    with pytest.raises(UsageError, match=r"^time_budget must be a duration above 0 such as 90s, 20m or 1\.5h"):
        parse_duration("time_budget", value)


@pytest.mark.parametrize("value, text, kind_index", [
    ("cpu", "cpu", ("cpu", 0)), (" GPU ", "gpu", ("gpu", 0)), ("gpu:3", "gpu:3", ("gpu", 3)), ("Gpu:12", "gpu:12", ("gpu", 12)),
])
def test_parse_device_and_kind_index(value, text, kind_index):
    assert parse_device(value) == text
    assert device_kind_index(value) == kind_index


@pytest.mark.parametrize("value", ["cuda", "gpu:", "gpu:-1", "gpu:\u0663", "xpu:0"])
def test_parse_device_refusals(value):
    with pytest.raises(UsageError, match=r"is not valid; use auto, cpu, gpu or gpu:N"):
        parse_device(value)


def test_device_kind_index_refuses_auto():
    assert parse_device("AUTO") == "auto"
    with pytest.raises(UsageError, match=r"^device 'auto' is not valid here; use cpu, gpu or gpu:N"):
        device_kind_index("auto")


@pytest.mark.parametrize("value, ok", [("auto", True), ("4", True), (2, True), ("0", False), ("-1", False), ("x", False)])
def test_parse_threads(value, ok):
    if ok:
        assert parse_threads(value) == str(value)
    else:
        with pytest.raises(UsageError, match=r"use a positive integer or 'auto'"):
            parse_threads(value)
