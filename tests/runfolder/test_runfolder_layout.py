"""runfolder/layout.py (every file name of a run, where a new run goes) and runfolder/atomic.py (the folder swap)."""

import os
import subprocess
import sys

import pytest

from hapi_runner.errors import UsageError
from hapi_runner.runfolder.atomic import recover_litter, replace_dir, staging_dir
from hapi_runner.runfolder.layout import (RunPaths, epoch_folders, epoch_of, latest_run, next_run_dir, resolve_run_dir,
                                          run_folder_of)

pytestmark = pytest.mark.smoke


def _touch(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def test_run_paths_names(tmp_path):
    paths = RunPaths(tmp_path / "run_001")
    root = str(tmp_path / "run_001")
    assert os.fspath(paths) == root
    assert paths.results == os.path.join(root, "results.json")
    assert paths.config == os.path.join(root, "config.json")
    assert paths.metrics == os.path.join(root, "metrics.csv")
    assert paths.checkpoint() == os.path.join(root, "checkpoints", "last")
    assert paths.checkpoint("epoch_3") == os.path.join(root, "checkpoints", "epoch_3")
    assert paths.export_report == os.path.join(root, "inference", "export_report.json")
    assert (paths.export("paddle"), paths.export("onnx")) == (paths.inference, os.path.join(root, "onnx"))


@pytest.mark.parametrize("name, epoch", [("epoch_7", 7), ("/x/checkpoints/epoch_12/", 12), ("epoch_", None),
                                         ("epoch_3a", None), ("last", None), ("my_epoch_3", None)])
def test_epoch_of(name, epoch):
    assert epoch_of(name) == epoch


def test_epoch_folders_sorted_numerically_ignoring_files_and_links(tmp_path):
    for n in (10, 2, 1):
        (tmp_path / f"epoch_{n}").mkdir()
    (tmp_path / "epoch_5").write_text("a file, not a checkpoint")
    os.symlink("epoch_10", tmp_path / "epoch_99")
    (tmp_path / "last").mkdir()
    assert epoch_folders(str(tmp_path)) == [1, 2, 10]
    assert epoch_folders(str(tmp_path / "missing")) == []


def test_next_run_dir_numbers_above_the_highest(tmp_path):
    assert next_run_dir(str(tmp_path), "lenet-mnist") == str(tmp_path / "lenet-mnist" / "run_001")
    for name in ("run_001", "run_009", "run_x", "notes"):
        (tmp_path / "lenet-mnist" / name).mkdir(parents=True)
    assert next_run_dir(str(tmp_path), "lenet-mnist") == str(tmp_path / "lenet-mnist" / "run_010")


def test_resolve_run_dir_refuses_a_finished_run_unless_overwrite(tmp_path):
    run = tmp_path / "run"
    _touch(str(run / "results.json"), "{}")
    with pytest.raises(UsageError, match=r"already holds a finished run \(results\.json\); pass --overwrite"):
        resolve_run_dir(str(run), str(tmp_path), "x")
    assert resolve_run_dir(str(run), str(tmp_path), "x", overwrite=True) == str(run)
    assert resolve_run_dir(None, str(tmp_path), "m-d") == str(tmp_path / "m-d" / "run_001")


def test_resolve_run_dir_refuses_a_file_as_parent(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match=r"is a file, not a folder; choose another --save-dir"):
        resolve_run_dir(str(tmp_path / "afile" / "run"), str(tmp_path), "x")


def test_resolve_run_dir_refuses_an_unwritable_parent(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # Root writes through 0o555, so the answer of the permission check is what the test fixes.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(locked) and real_access(path, mode))
    with pytest.raises(UsageError, match=r"^save_dir '.*new/run' cannot be written \('.*locked' is not writable\); "
                                         r"choose another --save-dir\.$"):
        resolve_run_dir(str(locked / "new" / "run"), str(tmp_path), "x")
    with pytest.raises(UsageError, match=r"is not writable"):
        resolve_run_dir(None, str(locked), "x")


def test_run_folder_of_from_every_resume_path(tmp_path):
    run = tmp_path / "run_001"
    _touch(str(run / "config.json"), "{}")
    (run / "checkpoints" / "epoch_2").mkdir(parents=True)
    os.symlink("epoch_2", run / "checkpoints" / "last")
    for path in (run, run / "checkpoints", run / "checkpoints" / "epoch_2", run / "checkpoints" / "last"):
        assert run_folder_of(str(path)) == str(run)
    assert run_folder_of(str(tmp_path)) is None


def test_latest_run_is_the_highest_with_a_checkpoint(tmp_path):
    base = tmp_path / "m-d"
    (base / "run_002" / "checkpoints" / "epoch_1").mkdir(parents=True)
    (base / "run_010" / "checkpoints" / "last").mkdir(parents=True)
    (base / "run_011" / "checkpoints").mkdir(parents=True)  # started, nothing saved yet
    assert latest_run(str(tmp_path), "m-d") == str(base / "run_010")
    assert latest_run(str(tmp_path), "other") is None


def test_replace_dir_swaps_and_leaves_no_litter(tmp_path):
    target = tmp_path / "inference"
    _touch(str(target / "old.txt"), "old")
    staged = staging_dir(str(target))
    _touch(os.path.join(staged, "new.txt"), "new")
    replace_dir(staged, str(target))
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["inference"]


def _dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_recover_litter_puts_back_a_folder_set_aside_by_a_killed_writer(tmp_path):
    pid = _dead_pid()
    _touch(str(tmp_path / f".tmp-old-inference-{pid}" / "model.json"), "kept")  # killed between the two renames
    _touch(str(tmp_path / f".tmp-inference-abc-{pid}" / "half.json"))  # its half-built replacement
    restored = recover_litter(str(tmp_path))
    assert restored == [str(tmp_path / "inference")]
    assert (tmp_path / "inference" / "model.json").read_text() == "kept"
    assert sorted(os.listdir(tmp_path)) == ["inference"]


def test_recover_litter_removes_the_aside_folder_when_the_new_one_is_in(tmp_path):
    pid = _dead_pid()
    _touch(str(tmp_path / f".tmp-old-inference-{pid}" / "model.json"), "old")
    _touch(str(tmp_path / "inference" / "model.json"), "new")
    assert recover_litter(str(tmp_path)) == []
    assert sorted(os.listdir(tmp_path)) == ["inference"]
    assert (tmp_path / "inference" / "model.json").read_text() == "new"


def test_recover_litter_leaves_a_live_writers_litter_and_other_targets(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        aside, other = f".tmp-old-inference-{live.pid}", f".tmp-onnx-x-{_dead_pid()}"
        _touch(str(tmp_path / aside / "model.json"))
        _touch(str(tmp_path / other / "m.onnx"))
        assert recover_litter(str(tmp_path), name="inference") == []
        assert sorted(os.listdir(tmp_path)) == sorted([aside, other])  # live writer's kept; onnx's not ours to judge
        recover_litter(str(tmp_path))
        assert os.listdir(tmp_path) == [aside]  # the dead writer's goes once all targets are looked at
    finally:
        live.kill()
        live.wait()
