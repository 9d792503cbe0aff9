"""hapi-runner serve's command line: flags checked in one line, a missing extra named, sizes parsed."""

import re
import sys

import pytest

from hapi_runner.cli.app import main
from hapi_runner.deploy.serve_config import parse_size
from hapi_runner.errors import UsageError


@pytest.mark.parametrize("text,expected", [("8M", 8 * 2**20), ("512k", 512 * 1024), ("1.5MB", 3 * 2**19), ("1000", 1000),
                                           ("2GiB", 2 * 2**30)])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8X", "", "-1M", "0"])
def test_bad_sizes(text):
    with pytest.raises(UsageError, match="--max-upload"):
        parse_size(text)


@pytest.mark.parametrize("flags,match", [
    (["--max-upload", "lots"], r"--max-upload 'lots' is not a size"),
    (["--port", "70000"], r"port must be .*65535"),
    (["--max-batch", "0"], r"max_batch must be"),
    (["--max-delay-ms", "-1"], r"--max-delay-ms -1.0 is out of range"),
    (["--workers", "0"], r"workers must be"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, match):
    assert main(["serve", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hapi-runner: error:")
    assert re.search(match, err), err


def test_a_missing_extra_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    assert main(["serve", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'hapi-runner[serve]'" in err and "fastapi" in err


def test_a_folder_without_an_export_is_one_line(tmp_path, capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no exported model" in err


@pytest.mark.parametrize("cpus,workers,threads", [(1, 1, 1), (2, 1, 2), (2, 2, 1), (16, 1, 15), (16, 2, 7), (16, 32, 1)])
def test_predictor_threads_leave_a_cpu_to_the_server_from_three_on(cpus, workers, threads):
    from hapi_runner.deploy.serve import predictor_threads

    assert predictor_threads(cpus, workers) == threads
