"""VisualDLLogger: hooks with made-up logs, then a real fit read back through a real VisualDL server."""

import json
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from hapi_runner.callbacks.visualdl import VisualDLLogger, hparam_values
from hapi_runner.errors import UsageError
from helpers import ImageSet, lenet_model

SERVER_START_SECONDS = 30


@pytest.mark.parametrize("kwargs,match", [
    (dict(log_freq=0), r"log_freq must be >= 1 \(training steps\), got 0"),
    (dict(log_freq=2.5), r"log_freq must be an integer >= 1 \(training steps\), got 2.5"),
    (dict(log_dir=""), "log_dir must be a folder path"),
    (dict(hparams=[("lr", 0.1)]), "hparams must be a dict"),
])
def test_constructor_checks_arguments(tmp_path, kwargs, match):
    args = dict(log_dir=str(tmp_path / "visualdl"))
    args.update(kwargs)
    with pytest.raises(UsageError, match=match):
        VisualDLLogger(**args)


def test_hparam_values_are_numbers_or_text():
    assert hparam_values({"lr": 0.1, "epochs": 3, "model": "lenet", "amp": None, "augment": True, "topk": [1, 5]}) == {
        "lr": 0.1, "epochs": 3, "model": "lenet", "augment": "true", "topk": "[1, 5]"}


def test_hooks_count_steps_across_epochs_and_resume(tmp_path):
    logger = VisualDLLogger(str(tmp_path / "visualdl"), log_freq=3)
    logger.set_model(types.SimpleNamespace(_optimizer=None))
    logger.on_train_begin()
    for epoch in range(2):
        logger.on_epoch_begin(epoch)
        for step in range(5):
            logger.on_train_batch_end(step, {"loss": [0.5], "acc_top1": 0.25, "batch_size": 8, "step": step})
        logger.on_epoch_end(epoch, {"loss": [0.5]})
        logger.on_eval_end({"loss": [0.7], "acc_top1": 0.2, "acc_top5": 0.6})
    logger.on_train_end()
    assert logger.writer is None and logger.epoch == 2
    state = logger.state_dict()
    assert state["global_step"] == 10 and state["file_name"].startswith("vdlrecords")

    resumed = VisualDLLogger(str(tmp_path / "visualdl"), log_freq=3)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as a checkpoint stores it
    resumed.on_train_begin()
    assert resumed.global_step == 10 and resumed.writer.file_name.endswith(state["file_name"])
    resumed.on_train_end()

    resumed.on_train_begin()  # a new fit() without a restore starts a new series
    assert resumed.global_step == 0
    resumed.on_train_end()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == 0, body
    return body["data"]


def start_server(log_dir):
    """``visualdl --logdir`` on a free loopback port, with telemetry off (nothing may leave the machine)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "visualdl.server.app", "--logdir", str(log_dir), "--host", "127.0.0.1",
         "--port", str(port), "--disable-telemetry"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"visualdl exited with {process.returncode}: {process.stdout.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(base + "/alive", timeout=1).close()
            return process, base
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                stop_server(process)
                raise AssertionError(f"visualdl did not answer on {base} within {SERVER_START_SECONDS} s")
            time.sleep(0.2)


def stop_server(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    process.stdout.close()


def test_real_server_shows_our_scalars_across_a_resume(tmp_path):
    log_dir = tmp_path / "run" / "visualdl"
    model = lenet_model()
    train, evaluation = ImageSet(64), ImageSet(16, seed=1)  # 4 steps of 16 per epoch
    logger = VisualDLLogger(str(log_dir), log_freq=2, hparams={"model": "lenet", "lr": 0.01, "batch_size": 16})
    model.fit(train, evaluation, batch_size=16, epochs=2, verbose=0, callbacks=[logger])

    # Resume: a new logger restored from the checkpointed state, one more epoch.
    resumed = VisualDLLogger(str(log_dir), log_freq=2, hparams={"model": "lenet", "lr": 0.01, "batch_size": 16})
    resumed.load_state_dict(logger.state_dict())
    resumed.epoch_offset = 2
    model.fit(train, evaluation, batch_size=16, epochs=1, verbose=0, callbacks=[resumed])
    assert resumed.global_step == 12

    process, base = start_server(log_dir)
    try:
        tags = get_json(base + "/app/api/scalar/tags")
        assert len(tags["runs"]) == 1, tags
        run, run_tags = tags["runs"][0], set(tags["tags"][0])
        assert {"train/loss", "train/acc_top1", "train/acc_top5", "train/lr", "train/images_per_second",
                "eval/loss", "eval/acc_top1", "eval/acc_top5"} <= run_tags

        def series(tag):
            points = get_json(base + "/app/api/scalar/list?" + urllib.parse.urlencode({"run": run, "tag": tag}))
            return [p[1] for p in points], [p[2] for p in points]

        steps, losses = series("train/loss")
        assert steps == [2, 4, 6, 8, 10, 12], "one point every 2 of 12 global steps, continuing over the resume"
        assert all(np.isfinite(losses))
        assert series("eval/acc_top1")[0] == [1, 2, 3]
        assert series("train/images_per_second")[0] == [1, 2, 3]
        assert series("train/lr")[1] == pytest.approx([0.01] * 6)
        hparams = get_json(base + "/app/api/hparams/list")
        assert hparams[0]["hparams"] == {"model": "lenet", "lr": 0.01, "batch_size": 16}
        assert set(hparams[0]["metrics"]) == {"eval/loss", "eval/acc_top1", "eval/acc_top5"}
    finally:
        stop_server(process)
