"""End to end through Runner and the CLI: resume, refusals, checkpoints, early stopping, NaN guard, export,
the run folder, LR on plateau and config files.

The callbacks have hook-level tests of their own; these check that the Runner wires them together as the
README promises. Every run is seconds long: LeNet on 64-128 synthetic images, one math thread, tmp_path.
"""

import hashlib
import json
import logging
import math
import os
import shutil

import numpy as np
import pytest

from conftest import tiny_config
from hapi_runner import Runner
from hapi_runner.runfolder.checkpoint_format import link_target
from hapi_runner.cli.app import main
from hapi_runner.runfolder.resume import find_checkpoint, load_checkpoint
from helpers import read_json, read_rows  # noqa: E402

pytestmark = [pytest.mark.smoke, pytest.mark.slow]  # smoke: also run against Paddle 2.6 by .ci/run

# Flags of a seconds-long CLI run: 64 synthetic MNIST-shaped images, 2 batches per epoch, 16 eval images.
SYNTH = ["--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64", "--batch-size", "32",
         "--verbose", "0", "--threads", "1"]
# What most tests do not look at; each costs time (the export runs paddle.jit.save and paddle.inference).
LEAN = ["--no-export", "--no-visualdl", "--no-report"]
# metrics.csv columns that depend on the computation alone, not on the clock.
DETERMINISTIC = ["epoch", "train_loss", "train_acc_top1", "train_acc_top5", "eval_loss", "eval_acc_top1",
                 "eval_acc_top5", "lr"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- helpers ------------------------------------------------------------------------------------

def synthetic_config(data_root, tmp_path, **overrides):
    """tiny_config on synthetic MNIST-shaped data, without the slow extras unless asked for."""
    values = dict(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, batch_size=32,
                  visualdl=False, export=False)
    values.update(overrides)
    return tiny_config(data_root, tmp_path, **values)


def run_cli(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("hapi-runner: error: "), err
    assert "Traceback" not in err
    return lines[0]


def epoch_dirs(run):
    folder = os.path.join(run, "checkpoints")
    return sorted(e for e in os.listdir(folder) if e.startswith("epoch_") and not os.path.islink(os.path.join(folder, e)))


def weights(runner):
    return {k: v.numpy() for k, v in runner.network.state_dict().items()}


def file_digests(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest() for name in sorted(os.listdir(folder))}


class Crash(Exception):
    """Stands in for a process killed between two epochs."""


def crash_before_epoch(run_epoch):
    """A callback that raises when the run's ``run_epoch`` (1-based) is about to start.

    User callbacks run before the checkpoint in on_epoch_begin, but the checkpoint of the previous epoch was
    written at the end of its evaluation, so the run dies with that checkpoint on disk, as a killed one would.
    """
    from paddle.callbacks import Callback

    class CrashBeforeEpoch(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch + 1 == run_epoch:
                raise Crash(f"killed before epoch {run_epoch}")

    return CrashBeforeEpoch()


@pytest.fixture
def hapi_log(caplog, monkeypatch):
    """caplog for 'hapi_runner', which cli.main (run by other tests in this process) detaches from the root logger."""
    monkeypatch.setattr(logging.getLogger("hapi_runner"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="hapi_runner")
    return caplog


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory):
    """A finished 1-epoch lenet run on synthetic MNIST-shaped data, with its checkpoint; tests work on copies."""
    runner = Runner(synthetic_config(data_root, tmp_path_factory.mktemp("finished")))
    runner.fit()
    return runner.run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    target = tmp_path / "finished"
    shutil.copytree(finished_run, target, symlinks=True)
    return str(target)


@pytest.fixture(scope="module")
def default_run(data_root, tmp_path_factory):
    """A 1-epoch run with the default extras on: VisualDL, curves, checkpoints and the export."""
    runner = Runner(tiny_config(data_root, tmp_path_factory.mktemp("default"), dataset="synthetic",
                                synthetic_like="mnist", synthetic_size=64, batch_size=32))
    results = runner.fit()
    return runner, results


# --- 1. exact resume ------------------------------------------------------------------------------

def test_resume_after_a_crash_ends_where_an_unbroken_run_ends(data_root, tmp_path, capsys):
    # Cifar-shaped synthetic data trains with crop-flip augmentation (drawn per epoch), and cosine makes the LR a
    # function of the step: both must continue from the checkpoint for the weights to match.
    cfg = synthetic_config(data_root, tmp_path, synthetic_like="cifar10", synthetic_size=128, epochs=4,
                           lr_schedule="cosine", lr=0.05)
    straight = Runner(cfg.replace(save_dir=str(tmp_path / "straight")))
    assert straight.train_data.transform.augment == "crop-flip"
    straight_results = straight.fit()

    broken_dir = str(tmp_path / "broken")
    with pytest.raises(Crash):
        Runner(cfg.replace(save_dir=broken_dir)).fit(callbacks=[crash_before_epoch(3)])
    assert epoch_dirs(broken_dir) == ["epoch_1", "epoch_2"] and not os.path.exists(os.path.join(broken_dir, "results.json"))
    capsys.readouterr()
    resumed = Runner(cfg.replace(save_dir=broken_dir, resume=broken_dir))
    results = resumed.fit()
    assert "resuming after epoch 2 of 4" in capsys.readouterr().out

    # Same float32 ops in the same order on the same CPU build and one thread: bit-identical in practice. atol=1e-6
    # only leaves room for oneDNN picking another kernel for a new model instance. Measured: epochs 3-4 re-drawing
    # the crops and shuffles of epochs 1-2 moves some weight by 1.5e-4, a cosine restarted from step 0 by 0.18.
    resumed_weights = weights(resumed)
    for key, value in weights(straight).items():
        np.testing.assert_allclose(resumed_weights[key], value, rtol=0, atol=1e-6, err_msg=key)

    rows, straight_rows = read_rows(broken_dir), read_rows(straight.run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    for row, expected in zip(rows[:2], straight_rows[:2]):  # epochs 1-2 are the checkpoint's own rows
        assert {k: row[k] for k in DETERMINISTIC} == {k: expected[k] for k in DETERMINISTIC}
    for row, expected in zip(rows[2:], straight_rows[2:]):  # epochs 3-4 were trained again: same figures
        np.testing.assert_allclose([float(row[k]) for k in DETERMINISTIC], [float(expected[k]) for k in DETERMINISTIC],
                                   rtol=1e-5, atol=1e-12)
    lrs = [float(r["lr"]) for r in straight_rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]  # the cosine really moved

    on_disk = read_json(os.path.join(broken_dir, "results.json"))
    assert on_disk["resumed_from_epoch"] == results["resumed_from_epoch"] == 2
    assert on_disk["epochs_run"] == 4 and straight_results["resumed_from_epoch"] is None
    assert on_disk["best"] == straight_results["best"]
    assert link_target(os.path.join(broken_dir, "checkpoints"), "last") == "epoch_4"


def test_training_on_with_more_epochs_matches_an_unbroken_run(data_root, tmp_path):
    # A constant rate does not depend on --epochs, so 2 epochs then "train on to 4" is the same run as 4 at once.
    # resume='latest' with save_dir resumes that folder. Tolerance as in the test above.
    cfg = synthetic_config(data_root, tmp_path, synthetic_like="cifar10", synthetic_size=128, lr=0.02)
    straight = Runner(cfg.replace(epochs=4, save_dir=str(tmp_path / "straight")))
    straight.fit()
    run = str(tmp_path / "run")
    Runner(cfg.replace(epochs=2, save_dir=run)).fit()
    resumed = Runner(cfg.replace(epochs=4, save_dir=run, resume="latest"))
    results = resumed.fit()
    for key, value in weights(straight).items():
        np.testing.assert_allclose(weights(resumed)[key], value, rtol=0, atol=1e-6, err_msg=key)
    assert results["resumed_from_epoch"] == 2 and results["epochs_run"] == 4
    rows, straight_rows = read_rows(run), read_rows(straight.run_dir)
    assert len(rows) == 4
    assert [{k: r[k] for k in DETERMINISTIC} for r in rows[:2]] == [{k: r[k] for k in DETERMINISTIC} for r in straight_rows[:2]]


def test_training_on_past_a_finished_cosine_schedule_is_refused(capsys, tmp_path):
    # Paddle's cosine decay is recursive in its last rate: continued past its end it would train at lr 0.
    run = tmp_path / "run"
    assert run_cli(capsys, [*SYNTH, *LEAN, "--lr-schedule", "cosine", "--epochs", "2", "--save-dir", run])[0] == 0
    before = (run / "config.json").read_bytes()
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, "--lr-schedule", "cosine", "--epochs", "4", "--resume", run])
    assert code == 2
    assert "cosine schedule spans 2 epochs" in one_error_line(err)
    assert (run / "config.json").read_bytes() == before


# --- 2. resume refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, match", [
    (["--resume", "{run}", "--model", "resnet18"], "checkpoint is for model lenet, this run is resnet18"),
    (["--resume", "{run}", "--dataset", "mnist", "--data-dir", "{mnist}", "--no-download"],
     "checkpoint is for dataset synthetic, this run is mnist"),
    (["--resume", "{run}", "--epochs", "1"], "the checkpoint is at epoch 1 and --epochs is 1; pass --epochs above 1"),
    (["--resume", "{run}", "--epochs", "2", "--optimizer", "adam"], "trained with optimizer Momentum, this run uses Adam"),
    (["--resume", "{run}", "--epochs", "2", "--lr-schedule", "cosine"], "LR schedule none (a constant rate), this run uses CosineAnnealingDecay"),
    (["--resume", "--output-root", "{empty}"], "--resume: no run of lenet-synthetic under"),
    (["--resume", "{missing}"], "does not exist; pass a run folder"),
], ids=["other model", "other dataset", "epochs not above", "other optimizer", "other schedule", "no previous run", "missing path"])
def test_resume_refusals_are_one_line_and_exit_2(capsys, data_root, tmp_path, run_copy, argv, match):
    places = {"run": run_copy, "mnist": data_root / "mnist", "empty": tmp_path / "empty", "missing": tmp_path / "missing"}
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, *(a.format(**{k: str(v) for k, v in places.items()}) for a in argv)])
    assert code == 2
    assert match in one_error_line(err)
    assert epoch_dirs(run_copy) == ["epoch_1"]
    assert read_json(os.path.join(run_copy, "results.json"))["epochs_run"] == 1


def test_a_refused_resume_leaves_the_run_folder_unchanged(capsys, run_copy):
    before = {name: open(os.path.join(run_copy, name), "rb").read() for name in ("config.json", "results.json", "metrics.csv")}
    code, _, _ = run_cli(capsys, [*SYNTH, *LEAN, "--resume", run_copy, "--model", "resnet18"])
    assert code == 2
    assert {name: open(os.path.join(run_copy, name), "rb").read() for name in before} == before


# --- 3. a corrupt latest checkpoint ---------------------------------------------------------------

def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(data_root, tmp_path, hapi_log):
    cfg = synthetic_config(data_root, tmp_path)
    run = Runner(cfg.replace(epochs=2)).fit()["run_dir"]
    params = os.path.join(run, "checkpoints", "epoch_2", "model.pdparams")
    with open(params, "r+b") as fh:
        fh.truncate(os.path.getsize(params) // 2)

    results = Runner(cfg.replace(epochs=3, resume=run)).fit()

    assert "epoch_2" in hapi_log.text and "sha256" in hapi_log.text
    assert "resuming from the older checkpoint" in hapi_log.text and "epoch_1" in hapi_log.text
    assert results["resumed_from_epoch"] == 1 and results["epochs_run"] == 3
    assert [int(r["epoch"]) for r in read_rows(run)] == [1, 2, 3]
    # Epoch 2 was trained again and its checkpoint rewritten whole.
    assert load_checkpoint(os.path.join(run, "checkpoints", "epoch_2"))["epoch"] == 2
    assert load_checkpoint(find_checkpoint(run))["epoch"] == 3


# --- 4. keep-last -----------------------------------------------------------------------------------

def test_keep_last_one_keeps_the_newest_epoch_and_what_best_points_to(capsys, tmp_path):
    run = str(tmp_path / "run")
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, "--epochs", "3", "--keep-last", "1", "--save-dir", run])
    assert code == 0, err
    checkpoints = os.path.join(run, "checkpoints")
    best = link_target(checkpoints, "best")
    assert link_target(checkpoints, "last") == "epoch_3"
    assert epoch_dirs(run) == sorted({"epoch_3", best})
    for link in ("last", "best"):
        assert os.path.isdir(os.path.join(checkpoints, link))  # resolves
        assert load_checkpoint(os.path.join(checkpoints, link))["complete"] is True


# --- 5. early stopping ------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, stopped_at, best, best_epoch", [
    # lr 1e-9 moves no weight by as much as a float32 ulp: epoch 1 is the best, epoch 2 cannot beat it.
    (["--lr", "1e-9"], 2, "epoch 1's", 1),
    # Nothing beats a top-1 accuracy of 1.01: epoch 1 already has waited patience epochs.
    (["--baseline", "1.01"], 1, 1.01, None),
], ids=["tiny lr", "unbeatable baseline"])
def test_early_stopping_ends_the_run_and_says_why(capsys, tmp_path, flags, stopped_at, best, best_epoch):
    run = str(tmp_path / "run")
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, "--epochs", "6", "--early-stopping-patience", "1", "--restore-best",
                                    *flags, "--save-dir", run])
    assert code == 0, err
    results = read_json(os.path.join(run, "results.json"))
    assert results["stopped_early"] is True
    assert results["epochs_run"] == stopped_at < 6
    assert len(read_rows(run)) == stopped_at
    reason = results["stop_reason"]["early_stopping"]
    assert reason["monitor"] == "acc_top1" and reason["epoch"] == stopped_at and reason["best_epoch"] == best_epoch
    assert reason["best"] == (float(read_rows(run)[0]["eval_acc_top1"]) if best == "epoch 1's" else best)
    assert link_target(os.path.join(run, "checkpoints"), "last") == f"epoch_{stopped_at}"


# --- 6. NaN guard -----------------------------------------------------------------------------------

def test_a_nan_loss_in_the_first_epoch_fails_with_one_line(capsys, tmp_path):
    # lr 1e8: the first update throws LeNet's weights so far that the second batch's loss is NaN.
    run = str(tmp_path / "run")
    code, _, err = run_cli(capsys, [*SYNTH, "--epochs", "3", "--lr", "1e8", "--save-dir", run])
    assert code == 1
    line = one_error_line(err)
    assert "nan" in line.lower() or "inf" in line.lower()
    results = read_json(os.path.join(run, "results.json"))
    assert results["stop_reason"]["error"] == "NonFiniteLossError"
    assert results["stop_reason"]["epoch"] == 1 and results["epochs_run"] == 0
    assert epoch_dirs(run) == [] and not os.path.exists(os.path.join(run, "inference"))


def test_a_nan_loss_after_a_good_epoch_leaves_its_checkpoint_intact(capsys, run_copy):
    import paddle

    good = os.path.join(run_copy, "checkpoints", "epoch_1")
    digests = file_digests(good)
    # Resuming with lr 1e8 makes epoch 2 blow up after its first update.
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, "--resume", run_copy, "--epochs", "3", "--lr", "1e8"])
    assert code == 1
    line = one_error_line(err)
    assert "nan" in line.lower() or "inf" in line.lower()
    assert "epoch 2" in line
    reason = read_json(os.path.join(run_copy, "results.json"))["stop_reason"]
    assert reason["error"] == "NonFiniteLossError" and reason["epoch"] == 2

    assert epoch_dirs(run_copy) == ["epoch_1"]
    assert link_target(os.path.join(run_copy, "checkpoints"), "last") == "epoch_1"
    assert file_digests(good) == digests
    state = load_checkpoint(find_checkpoint(run_copy))
    assert state["epoch"] == 1
    params = paddle.load(os.path.join(good, "model.pdparams"))
    assert params and all(np.isfinite(t.numpy()).all() for t in params.values())


def test_results_json_of_a_nan_stop_is_strict_json(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, [*SYNTH, *LEAN, "--lr", "1e8", "--save-dir", run])[0] == 1

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    json.loads((run / "results.json").read_text(), parse_constant=refuse)


# --- 7. export ----------------------------------------------------------------------------------------

def test_default_run_exports_a_verified_graph_that_predicts_like_the_runner(default_run):
    import paddle

    from hapi_runner.deploy import InferenceModel

    runner, results = default_run
    folder = os.path.join(runner.run_dir, "inference")
    graph = "model.json" if int(paddle.__version__.split(".")[0]) >= 3 else "model.pdmodel"
    for name in (graph, "model.pdiparams", "hapi_runner.json", "export_report.json"):
        assert os.path.isfile(os.path.join(folder, name)), name
    sidecar = read_json(os.path.join(folder, "hapi_runner.json"))
    spec = runner.train_data.spec
    assert sidecar["mean"] == pytest.approx(list(spec.mean)) and sidecar["std"] == pytest.approx(list(spec.std))
    assert sidecar["scale"] == "0-1" and sidecar["class_names"] == runner.train_data.class_names
    assert sidecar["model"] == "lenet" and sidecar["dataset"] == "synthetic"
    report = read_json(os.path.join(folder, "export_report.json"))
    assert report["passed"] is True and report["top1_agreement"] >= 0.999
    assert results["export"]["top1_agreement"] >= 0.999

    # The exported graph, fed raw uint8 images through the sidecar's preprocessing, picks the runner's classes.
    engine = InferenceModel(folder, threads=1)
    logits = engine.predict(engine.preprocess(runner.eval_data.images))
    probs = runner.predict()
    top2 = np.sort(probs, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-5  # an exact tie may fall either way
    np.testing.assert_array_equal(logits.argmax(axis=1)[decided], probs.argmax(axis=1)[decided])
    assert decided.mean() > 0.5


def test_export_on_best_exports_the_best_epoch(capsys, tmp_path):
    run = str(tmp_path / "run")
    code, _, err = run_cli(capsys, [*SYNTH, "--no-visualdl", "--export-on-best", "--epochs", "2", "--save-dir", run])
    assert code == 0, err
    sidecar = read_json(os.path.join(run, "inference", "hapi_runner.json"))
    assert sidecar["reason"].startswith("best acc_top1=")
    assert f"epoch_{sidecar['epoch']}" == link_target(os.path.join(run, "checkpoints"), "best")
    assert read_json(os.path.join(run, "results.json"))["export"]["top1_agreement"] >= 0.999


# --- 8. the run folder --------------------------------------------------------------------------------

def test_default_run_folder_holds_every_promised_file(default_run):
    runner, results = default_run
    run = runner.run_dir
    assert read_json(os.path.join(run, "config.json"))["model"] == "lenet"
    assert read_json(os.path.join(run, "results.json"))["final_eval"] == results["final_eval"]
    assert len(read_rows(run)) == 1
    with open(os.path.join(run, "curves.png"), "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    records = [f for f in os.listdir(os.path.join(run, "visualdl")) if f.startswith("vdlrecords")]
    assert records and all(os.path.getsize(os.path.join(run, "visualdl", f)) > 0 for f in records)
    checkpoints = os.path.join(run, "checkpoints")
    assert epoch_dirs(run) == ["epoch_1"]
    assert link_target(checkpoints, "last") == link_target(checkpoints, "best") == "epoch_1"
    assert all(os.path.isdir(os.path.join(checkpoints, link)) for link in ("last", "best"))


def test_no_visualdl_and_no_export_write_neither_folder(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, [*SYNTH, "--no-visualdl", "--no-export", "--save-dir", run, "--epochs", "1"])
    assert code == 0, err
    assert not (run / "visualdl").exists() and not (run / "inference").exists()
    assert (run / "results.json").is_file() and (run / "checkpoints" / "epoch_1").is_dir()
    assert read_json(run / "results.json")["export"] is None


# --- 9. LR on plateau ---------------------------------------------------------------------------------

def test_reduce_lr_on_plateau_scales_a_cosine_schedule(capsys, tmp_path):
    # lr 1e-9 leaves the weights as they are, so the eval loss never improves by the default min_delta (1e-4):
    # patience 1 reduces after epoch 2 and again after epoch 3.
    run = str(tmp_path / "run")
    code, _, err = run_cli(capsys, [*SYNTH, *LEAN, "--epochs", "4", "--lr", "1e-9", "--lr-schedule", "cosine",
                                    "--reduce-lr-on-plateau", "--plateau-patience", "1", "--plateau-factor", "0.5",
                                    "--save-dir", run])
    assert code == 0, err
    # metrics.csv's lr is the rate for the next step, read at the end of each epoch's training pass (before the
    # evaluation that may reduce it): cosine over 4 epochs x 2 steps, times the scale in force by then.
    steps, total = 2, 8
    cosine = [1e-9 * 0.5 * (1 + math.cos(math.pi * e * steps / total)) for e in (1, 2, 3)]
    expected = [cosine[0], cosine[1], cosine[2] * 0.5]
    np.testing.assert_allclose([float(r["lr"]) for r in read_rows(run)[:3]], expected, rtol=1e-4)
    reductions = read_json(os.path.join(run, "checkpoints", "last", "state.json"))["sources"]["reduce_lr"]["reductions"]
    assert [(r["epoch"], r["scale"]) for r in reductions] == [(2, 0.5), (3, 0.25)]
    for r in reductions:
        assert r["lr_after"] == pytest.approx(r["lr_before"] * 0.5)


# --- 10. config files ---------------------------------------------------------------------------------

def test_a_yaml_config_file_sets_the_new_keys(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "dataset: synthetic\nsynthetic_like: mnist\nsynthetic_size: 64\nbatch_size: 32\nepochs: 3\nverbose: 0\n"
        "threads: '1'\nvisualdl: false\n"
        "early_stopping_patience: 5\nsave_freq: 2\nkeep_last: 1\nexport: false\n"
    )
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, ["--config", config, "--save-dir", run])
    assert code == 0, err
    saved = read_json(run / "config.json")
    assert (saved["early_stopping_patience"], saved["save_freq"], saved["keep_last"], saved["export"]) == (5, 2, 1, False)
    # save_freq 2 over 3 epochs saves epochs 2 and 3 (the last); keep_last 1 keeps epoch 3 and whatever best is.
    best = link_target(str(run / "checkpoints"), "best")
    assert epoch_dirs(str(run)) == sorted({"epoch_3", best}) and best in ("epoch_2", "epoch_3")
    assert not (run / "inference").exists()
    assert read_json(run / "results.json")["epochs_run"] == 3


def test_a_misspelt_config_key_is_refused_naming_the_closest(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: synthetic\nearly_stoping_patience: 2\n")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, ["--config", config, "--save-dir", run])
    assert code == 2
    line = one_error_line(err)
    assert "unknown key 'early_stoping_patience'" in line and "Did you mean 'early_stopping_patience'?" in line
    assert not run.exists()
