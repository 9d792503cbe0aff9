"""Crash safety: SIGKILL at any moment, Ctrl-C and SIGTERM, and a full disk while saving."""

import errno
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import crash_test  # noqa: E402
from conftest import tiny_config  # noqa: E402


@pytest.mark.slow
def test_sigkill_at_three_moments_then_resume_leaves_a_whole_run(tmp_path):
    # Early, middle and late in training: before the first checkpoint, among epochs, near the export.
    outcome = crash_test.trial(str(tmp_path), epochs=4, kill_times=[0.3, 0.9, 1.6])
    assert outcome["killed"] >= 1
    assert outcome["problems"] == []


def start_training(run_dir, epochs=40):
    cmd = crash_test.train_command(str(run_dir), epochs, resume=False)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while not glob.glob(os.path.join(run_dir, "checkpoints", "epoch_1", "state.json")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_cleanly_and_says_how_to_resume(tmp_path, signum, code):
    from hapi_runner.runfolder.resume import find_checkpoint, load_checkpoint

    run = tmp_path / "run"
    proc = start_training(run)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [l for l in err.splitlines() if l.startswith("hapi-runner: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name}" in lines[0] and f"--resume {run}" in lines[0]
    state = load_checkpoint(find_checkpoint(str(run)))
    assert state["epoch"] >= 1
    resumed = subprocess.run(crash_test.train_command(str(run), state["epoch"] + 1, resume=True), capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(data_root, tmp_path, monkeypatch):
    import paddle

    from hapi_runner import HapiRunnerError, Runner
    from hapi_runner.callbacks import checkpoint
    from hapi_runner.runfolder.resume import find_checkpoint, load_checkpoint

    runner = Runner(tiny_config(data_root, tmp_path, epochs=2, export=False, visualdl=False))
    real_save = paddle.save
    calls = []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        if "epoch_2" in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.paddle if hasattr(checkpoint, "paddle") else paddle, "save", save)
    with pytest.raises(HapiRunnerError, match="could not write the checkpoint of epoch 2.*No space left on device.*epoch_1 is intact"):
        runner.fit()
    assert any("epoch_2" in c for c in calls)
    folder = find_checkpoint(str(tmp_path / "run"))
    assert os.path.basename(folder) == "epoch_1" and load_checkpoint(folder)["epoch"] == 1
    assert not glob.glob(str(tmp_path / "run" / "checkpoints" / ".tmp*"))


def killed_mid_write(path):
    """Runs atomic_write_text(path) in a child that SIGKILLs itself before the rename; returns the child's pid."""
    code = ("import os, signal, sys; from hapi_runner.runfolder import atomic as utils; "
            "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL); "
            "utils.atomic_write_text(sys.argv[1], 'half')")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT)
    assert child.wait() == -signal.SIGKILL
    return child.pid


@pytest.mark.slow
def test_a_write_killed_before_its_rename_leaves_litter_the_next_start_removes(data_root, tmp_path):
    from hapi_runner import Runner

    run = tmp_path / "run"
    pid = killed_mid_write(run / "metrics.csv")
    litter = [name for name in os.listdir(run) if name.startswith(".")]
    assert not (run / "metrics.csv").exists()
    assert len(litter) == 1 and litter[0].startswith(".tmp-") and litter[0].endswith(f"-{pid}")
    live = run / f".tmp-config.json-{os.getppid()}"  # another live process's write in progress is not touched
    live.write_text("in progress")

    Runner(tiny_config(data_root, tmp_path, export=False, visualdl=False)).fit()
    assert sorted(name for name in os.listdir(run) if name.startswith(".")) == [live.name]
    assert (run / "metrics.csv").read_text().startswith("epoch,")


def test_a_resume_with_another_monitor_continues_the_step_counts_and_epoch_numbers(data_root, tmp_path, capsys):
    import json

    from hapi_runner import Runner

    pytest.importorskip("visualdl")
    run = tmp_path / "run"
    Runner(tiny_config(data_root, tmp_path, epochs=1, export=False, visualdl=True, monitor="acc_top1")).fit()
    steps = json.loads((run / "checkpoints" / "epoch_1" / "state.json").read_text())["global_step"]
    capsys.readouterr()
    Runner(tiny_config(data_root, tmp_path, epochs=2, export=False, visualdl=True, monitor="loss", verbose=2,
                       resume=str(run), save_dir=None)).fit()
    state = json.loads((run / "checkpoints" / "epoch_2" / "state.json").read_text())
    assert steps > 1
    assert state["global_step"] == state["sources"]["visualdl"]["global_step"] == 2 * steps
    printed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch ")]
    assert printed == ["Epoch 2/2"]  # the run's second epoch, not this fit's first
