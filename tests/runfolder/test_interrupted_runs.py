"""A run stopped by Ctrl-C is not finished: the command it prints, or the one the user ran, carries it on."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from hapi_runner.runfolder import layout, relaunch
from test_cli import LEAN_RUN, one_error_line, run_main, stop_in_epoch


def test_ctrl_c_before_the_first_checkpoint_then_the_printed_command_trains_every_epoch(capsys, tmp_path, monkeypatch):
    run = tmp_path / "run2"
    monkeypatch.setattr(sys, "argv", ["train.py"])
    undo = stop_in_epoch(monkeypatch, 1)
    code, _, err = run_main(capsys, [*LEAN_RUN, "--epochs", "2", "--save-dir", str(run)])
    assert code == 130
    line = one_error_line(err)
    assert "no checkpoint yet" in line and not os.listdir(run / "checkpoints")
    assert not layout.is_finished(str(run))  # results.json says how far it got, yet the folder is not a finished run
    command = shlex.split(line.split("start the run again with: ", 1)[1])
    assert command[1:3] == ["train.py", "--resume"]
    undo()
    code, _, err = run_main(capsys, command[2:])
    assert code == 0, err
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 2


def test_the_same_command_again_starts_an_interrupted_run_afresh(capsys, tmp_path, monkeypatch):
    argv = [*LEAN_RUN, "--epochs", "1", "--save-dir", str(tmp_path / "run")]
    undo = stop_in_epoch(monkeypatch, 1)
    assert run_main(capsys, argv)[0] == 130
    undo()
    code, _, err = run_main(capsys, argv)
    assert code == 0, err
    assert layout.is_finished(str(tmp_path / "run"))
    assert run_main(capsys, argv)[0] == 2  # a finished run is still never overwritten


@pytest.mark.parametrize("argv0, on_path, expected", [
    ("/venv/bin/hapi-runner", True, "hapi-runner train"),
    ("/venv/bin/hapi-runner", False, "/venv/bin/hapi-runner train"),
    ("/site-packages/hapi_runner/__main__.py", False, "PY -m hapi_runner train"),
    ("../repo/train.py", False, "PY ../repo/train.py"),
    ("my scripts/train.py", False, "PY 'my scripts/train.py'"),
])
def test_the_resume_command_is_spelled_as_the_user_started_the_run(monkeypatch, argv0, on_path, expected):
    monkeypatch.setattr(relaunch.shutil, "which", lambda name: argv0 if on_path and name == "hapi-runner" else None)
    python = shlex.quote(sys.executable)
    assert relaunch.program(argv0) == expected.replace("PY", python)
    assert relaunch.resume_command("out/run 1", argv0) == f"{expected.replace('PY', python)} --resume 'out/run 1'"


def test_a_run_in_the_current_folder_is_named_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert relaunch.shown_path(str(tmp_path / "runs" / "a")) == os.path.join("runs", "a")
    assert relaunch.shown_path("/elsewhere/run") == "/elsewhere/run"


def test_ctrl_c_from_another_folder_prints_a_command_that_works_there(tmp_path):
    """A run started with hapi-runner outside the repository; the command printed on Ctrl-C is run, as printed, there."""
    if not relaunch.shutil.which("hapi-runner"):
        pytest.skip("the hapi-runner console script is not installed (pip install -e .)")
    lean = [*LEAN_RUN, "--synthetic-size", "512", "--epochs", "30", "--save-dir", "run"]
    proc = subprocess.Popen(["hapi-runner", "train", *lean], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "checkpoints" / "epoch_1" / "state.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    command = shlex.split(err.strip().splitlines()[-1].split("continue with: ", 1)[1])
    assert command[-2:] == ["--resume", "run"]
    epoch = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())["epoch"]
    done = subprocess.run([*command, "--epochs", str(epoch + 1)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs_run"] == epoch + 1


def test_the_report_of_an_interrupted_run_says_so_and_how_to_finish_it(capsys, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["/somewhere/hapi_runner/__main__.py"])
    stop_in_epoch(monkeypatch, 1)
    assert run_main(capsys, [*LEAN_RUN, "--epochs", "1", "--save-dir", str(run)])[0] == 130
    code, _, err = run_main(capsys, ["report", str(run)])
    assert code == 2
    assert one_error_line(err).endswith(f"'{run}' was interrupted before its end; finish it with: "
                                        f"{relaunch.program()} --resume {run}")
