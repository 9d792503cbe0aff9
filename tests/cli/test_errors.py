"""The bad input catalogue: one row per entry of docs/errors.md, each a real CLI run in-process.

Every row builds its bad input under tmp_path, calls ``hapi_runner.cli.app.main``, and checks the exit code, that
stderr holds exactly one ``hapi-runner: error:`` line (or, for a warning row, a ``hapi_runner: WARNING:``
line and no error) with the row's phrase and no traceback, and, where the row says so, that nothing already
on disk changed.

To refresh the messages quoted in docs/errors.md::

    HAPI_RUNNER_ERRORS_LOG=/tmp/errors.jsonl python -m pytest -q tests/cli/test_errors.py
"""

import dataclasses
import errno
import gzip
import json
import os
import pickle
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import pytest

from datafiles import cifar_archive_members, idx_bytes, write_cifar_archive, write_idx, write_mnist_files, write_tar_gz
from folder_images import class_tree, truncated_png
from hapi_runner.cli.app import main
from usernets import FACTORY, IMPORT_ERROR, LENET5, NOT_CONVERTIBLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

# A seconds-long run: LeNet on 64 synthetic MNIST-shaped images, one thread, nothing printed per step.
T = ("--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64", "--epochs", "1",
     "--batch-size", "32", "--verbose", "0", "--threads", "1")
LEAN = ("--no-export", "--no-visualdl", "--no-report")
RUN = ("--save-dir", "{tmp}/run")  # where a row's run would go; rows that must change nothing check it stays absent
MNIST = ("--dataset", "mnist", "--data-dir", "{tmp}/data", "--no-download", "--epochs", "1", "--batch-size", "16",
         "--verbose", "0", "--threads", "1", *LEAN, *RUN)
FOLDER_RUN = ("--epochs", "1", "--batch-size", "8", "--verbose", "0", "--threads", "1", *LEAN)
FOLDER = ("--dataset", "folder", "--data-dir", "{tmp}/images", "--image-size", "28", *FOLDER_RUN, *RUN)
CIFAR = ("--dataset", "cifar10", "--data-dir", "{tmp}/data", "--no-download", "--epochs", "1", "--batch-size", "16",
         "--verbose", "0", "--threads", "1", *LEAN, *RUN)


@dataclasses.dataclass
class Ctx:
    """What a row's ``prepare`` gets: its tmp folder, the shared trained run, and monkeypatch."""

    tmp: Path
    shared: Path
    monkeypatch: pytest.MonkeyPatch

    def run_copy(self) -> Path:
        """A private copy of the shared 2-epoch run (checkpoints epoch_1, epoch_2, last, best; inference/)."""
        target = self.tmp / "runcopy"
        if not target.exists():
            shutil.copytree(self.shared, target, symlinks=True)
        return target


@dataclasses.dataclass(frozen=True)
class Row:
    """One bad input.

    Attributes:
        id: the row's name, also in docs/errors.md.
        argv: the command line; ``{tmp}`` is the row's folder, ``{run}`` a copy of the shared trained run,
            ``{shared}`` the shared run itself (only for commands that must not change it).
        code: the exit code.
        phrase: what the error (or warning) line must contain.
        prepare: builds the bad input (files under ctx.tmp, monkeypatches).
        unchanged: nothing on disk may change: every file and folder under tmp (and the shared run) stays
            byte for byte, and nothing is added.
        warning: the run succeeds with a warning line instead of an error line.
        skip: returns a reason to skip on this machine, or None.
    """

    id: str
    argv: Tuple[str, ...]
    code: int
    phrase: str
    prepare: Optional[Callable[[Ctx], None]] = None
    unchanged: bool = False
    warning: bool = False
    skip: Optional[Callable[[], Optional[str]]] = None


# --- builders of bad input -------------------------------------------------------------------------------

def write(relative, content):
    """A prepare step writing ``content`` (str or bytes) to ``tmp/relative``."""
    def prepare(ctx):
        path = ctx.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return prepare


def mkdir(relative):
    return lambda ctx: (ctx.tmp / relative).mkdir(parents=True, exist_ok=True)


def steps(*prepares):
    def prepare(ctx):
        for p in prepares:
            p(ctx)
    return prepare


def no_system_copies(ctx):
    """Hides a Debian dataset package the machine may have (/usr/share/datasets/...), so 'not found' is certain."""
    from hapi_runner.datasets import registry

    for name in ("mnist", "cifar10"):
        ctx.monkeypatch.setitem(registry.DATASETS, name,
                                dataclasses.replace(registry.DATASETS[name], debian_dir=str(ctx.tmp / "no-debian")))


def mnist_files(damage=None, folder="data"):
    """The four MNIST files under tmp/folder; ``damage(folder)`` then breaks one."""
    def prepare(ctx):
        target = ctx.tmp / folder
        target.mkdir(parents=True, exist_ok=True)
        write_mnist_files(target, n_train=32, n_test=16, seed=1)
        if damage:
            damage(target)
    return prepare


def truncate(name):
    def damage(folder):
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def wrong_magic(folder):
    data = bytearray(idx_bytes(np.zeros((32, 28, 28), np.uint8)))
    data[2] = 0x0D  # float32 elements instead of unsigned bytes
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(data)))


def short_payload(folder):
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((32, 28, 28), np.uint8))[:-100]))


def fewer_labels(folder):
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(31, np.uint8))


def cifar(change=None):
    """tmp/data/cifar-10-python.tar.gz; ``change(members)`` edits the archive's members first."""
    def prepare(ctx):
        folder = ctx.tmp / "data"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "cifar-10-python.tar.gz"
        if change is None:
            write_cifar_archive(path, n_train=40, n_test=16)
            return
        members, _ = cifar_archive_members(10, n_train=40, n_test=16)
        change(members)
        write_tar_gz(path, members)
    return prepare


def cut_columns(members):
    name = "cifar-10-batches-py/data_batch_2"
    batch = pickle.loads(members[name], encoding="bytes")
    batch[b"data"] = batch[b"data"][:, :3000]
    members[name] = pickle.dumps(batch, protocol=2)


def truncated_cifar(ctx):
    cifar()(ctx)
    truncate("cifar-10-python.tar.gz")(ctx.tmp / "data")


def in_paddle_cache(ctx):
    """A cut-short download in Paddle's cache (conftest points the cache at tmp/paddle-cache)."""
    from hapi_runner.datasets import sources

    folder = Path(sources.PADDLE_CACHE) / "mnist"
    folder.mkdir(parents=True)
    write_mnist_files(folder, n_train=32, n_test=16, seed=1)
    truncate("train-images-idx3-ubyte.gz")(folder)


def download_fails(ctx):
    import paddle.dataset.common

    def offline(*args, **kwargs):
        raise ConnectionError("[Errno 101] Network is unreachable")

    no_system_copies(ctx)
    ctx.monkeypatch.setattr(paddle.dataset.common, "download", offline)


def no_cuda_build():
    import paddle

    return "a GPU build of Paddle is installed" if paddle.device.is_compiled_with_cuda() else None


def gpu_build(count=4, query_error=None, **launcher_env):
    """A GPU build of Paddle with ``count`` cards (or a device query raising ``query_error``), under ``launcher_env``."""
    def prepare(ctx):
        import paddle

        def device_count():
            if query_error is not None:
                raise query_error
            return count

        ctx.monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
        ctx.monkeypatch.setattr(paddle.device.cuda, "device_count", device_count)
        for name, value in launcher_env.items():
            ctx.monkeypatch.setenv(name, value)
    return prepare


def pir_export_only():
    import paddle

    return "Paddle 2.6 exports .pdmodel graphs, where TensorRT is offered" if paddle.__version__.startswith("2.") else None


def one_image(ctx):
    (ctx.tmp / "images").mkdir()
    np.save(ctx.tmp / "images" / "ok.npy", np.zeros((28, 28), np.uint8))


def unwritable(ctx):
    """tmp/locked, read-only; root ignores modes, so there os.access is told the truth the mode says."""
    locked = ctx.tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        ctx.monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if str(p).startswith(str(locked)) and mode & os.W_OK
                                else real(p, mode, *a, **k))


def disk_full(ctx):
    """Every fsync fails as on a full disk: the first write (config.json) meets it."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(os, "fsync", full)


def disk_full_at_checkpoint(ctx):
    from hapi_runner.runfolder import checkpoint_format

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(checkpoint_format, "write_checkpoint", full)


def corrupt_params(*epochs):
    def prepare(ctx):
        run = ctx.run_copy()
        for epoch in epochs:
            path = run / "checkpoints" / f"epoch_{epoch}" / "model.pdparams"
            path.write_bytes(path.read_bytes()[:100])
    return prepare


def damaged_config_json(ctx):
    (ctx.run_copy() / "config.json").write_text("{not json")


def without_checkpoints(ctx):
    shutil.rmtree(ctx.run_copy() / "checkpoints")


def written_by_a_live_process(ctx):
    """A checkpoint folder half-written by a process that is still running (this test's parent)."""
    (ctx.run_copy() / "checkpoints" / f".tmp-epoch_3-{os.getppid()}").mkdir()


def without_results(ctx):
    (ctx.run_copy() / "results.json").unlink()


def network_built_in_python(ctx):
    """The run's config.json as a run of Runner(config, network=...) writes it."""
    path = ctx.run_copy() / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": "<python object: LeNet>"}))


def image_files(ctx):
    from PIL import Image

    folder = ctx.tmp / "images"
    (folder / "empty").mkdir(parents=True)
    (folder / "text.png").write_text("not an image")
    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)  # incompressible: cutting it breaks it
    Image.fromarray(noise).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:200])
    np.save(folder / "wrong.npy", np.zeros((5, 5), np.uint8))
    (ctx.tmp / "no_export").mkdir()


def without_paddle2onnx(ctx):
    ctx.monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # import paddle2onnx now raises ImportError
    # onnxruntime present or not, only paddle2onnx is missing: a stand-in imports wherever it is not installed.
    ctx.monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))


def dying_worker(ctx):
    """The first worker process to build a batch exits, as one killed by a bus error on a full /dev/shm does."""
    import paddle

    from hapi_runner.datasets import pipeline

    marker = ctx.tmp / "worker-died"
    collate = pipeline._BatchCollate.__call__

    def dying_collate(self, indices):
        if paddle.io.get_worker_info() is not None and not marker.exists():
            marker.write_text("")
            os._exit(3)
        return collate(self, indices)

    ctx.monkeypatch.setattr(pipeline._BatchCollate, "__call__", dying_collate)


def weights_cache(ctx):
    """Paddle's ImageNet weights cache: an empty folder of the row's own."""
    from paddle.utils import download

    ctx.monkeypatch.setattr(download, "WEIGHTS_HOME", str(ctx.tmp / "weights"))


def folder_tree(change=None, per_class=3, classes=("bag", "coat", "dress")):
    """tmp/images/train/<class>/... of real images (PNG, JPEG, nested, junk files); ``change(root)`` then edits it."""
    def prepare(ctx):
        class_tree(ctx.tmp / "images", per_class, classes=classes)
        if change:
            change(ctx.tmp / "images")
    return prepare


def two_bad_images(root):
    truncated_png(root / "train" / "coat" / "broken.png", np.zeros((28, 28), np.uint8))
    (root / "train" / "dress" / "empty.jpg").write_bytes(b"")


def empty_class(root):
    (root / "train" / "hat").mkdir()


def val_class_training_lacks(root):
    class_tree(root, 1, classes=("bag", "hat"), split="val", junk=False)


def list_with_missing_file(root):
    (root / "train.txt").write_text("train/bag/img0.png 0\ntrain/coat/img0.jpg 1\ntrain/dress/gone.png 2\n")


def trained_folder_run(ctx):
    """A 1-epoch run on tmp/images, whose training folder then gains a class."""
    folder_tree()(ctx)
    assert main(["--dataset", "folder", "--data-dir", str(ctx.tmp / "images"), "--image-size", "28", *FOLDER_RUN,
                 "--save-dir", str(ctx.tmp / "run")]) == 0
    class_tree(ctx.tmp / "images", 3, classes=("hat",), junk=False)


def config(name, text):
    return write(f"cfg/{name}", text)


CFG = "{tmp}/cfg/"

# --- the catalogue -----------------------------------------------------------------------------------------

ROWS = [
    # command line: names
    Row("unknown-model", (*T, "--model", "resnet51"), 2, "Did you mean 'resnet50'?", unchanged=True),
    Row("unknown-dataset", (*T, "--dataset", "mnits"), 2, "dataset 'mnits' is not known; choose one of: cifar10, cifar100, fashion-mnist, fashion-mnist-mini, folder, mnist, synthetic. Did you mean 'mnist'?", unchanged=True),
    Row("unknown-synthetic-like", (*T, "--synthetic-like", "imagenet"), 2, "synthetic_like 'imagenet' is not known", unchanged=True),
    Row("summary-unknown-model", ("summary", "--model", "nosuch"), 2, "model 'nosuch' is not known", unchanged=True),
    # command line: a network of one's own
    Row("user-model-file-missing", (*T, "--model", "{tmp}/nets/absent.py:Net"), 2,
        "model file '{tmp}/nets/absent.py' does not exist; pass --model FILE.py:NAME with the path of a Python file "
        "(the networks the guide names are in the repository's examples/ folder).", unchanged=True),
    Row("user-model-name-missing", (*T, "--model", "{tmp}/nets/mynet.py:Net"), 2,
        "'{tmp}/nets/mynet.py' has no 'Net'; its Layer classes and functions: make_net, not_a_network. Pass --model {tmp}/nets/mynet.py:ONE_OF_THEM.",
        write("nets/mynet.py", FACTORY), unchanged=True),
    Row("user-model-import-error", (*T, "--model", "{tmp}/nets/mynet.py:Net"), 2,
        "model '{tmp}/nets/mynet.py' fails to import: ModuleNotFoundError: No module named 'no_such_module_here' (at {tmp}/nets/mynet.py:4)",
        write("nets/mynet.py", IMPORT_ERROR), unchanged=True),
    Row("user-model-not-a-layer", (*T, "--model", "{tmp}/nets/mynet.py:not_a_network"), 2,
        "returned a dict, not a paddle.nn.Layer; return the network from the function.", write("nets/mynet.py", FACTORY), unchanged=True),
    Row("user-model-unknown-kwarg", (*T, "--model", "{tmp}/nets/mynet.py:make_net", "--model-kwargs", "depth=3"), 2,
        "{tmp}/nets/mynet.py:make_net takes no argument 'depth' (--model-kwargs); it takes: num_classes, num_channels, width.",
        write("nets/mynet.py", FACTORY), unchanged=True),
    Row("user-model-kwargs-for-a-built-in", (*T, "--model-kwargs", "width=3"), 2,
        "model_kwargs apply to a --model FILE.py:NAME or package.module:NAME network, not to lenet; drop --model-kwargs.", unchanged=True),
    Row("user-model-forward-fails", (*T, "--model", "{tmp}/nets/lenet5.py:LeNet5"), 2,
        "{tmp}/nets/lenet5.py:LeNet5 fails on a [2, 1, 28, 28] input (ValueError: (InvalidArgument) In operator matmul",
        write("nets/lenet5.py", LENET5.replace("WIDTH", "16")), unchanged=True),
    Row("pretrained-imagenet-offline", (*T, "--model", "resnet18", "--pretrained", "imagenet", "--no-download"), 1,
        "ImageNet weights for resnet18 are not in Paddle's cache and --no-download is set; put resnet18.pdparams (from "
        "https://paddle-hapi.bj.bcebos.com/models/resnet18.pdparams, md5 cf548f46534aa3560945be4b95cd11c4) at "
        "{tmp}/weights/resnet18.pdparams, or pass --pretrained PATH.", weights_cache, unchanged=True),
    Row("pretrained-imagenet-unpublished", (*T, "--pretrained", "imagenet"), 2,
        "paddle.vision publishes no ImageNet weights for lenet; they exist for densenet121, mobilenet_v1", unchanged=True),
    Row("export-not-convertible", (*T, "--model", "{tmp}/nets/mynet.py:HostRoundTrip", *RUN), 0,
        "paddle.jit.save could not export HostRoundTrip: AttributeError:", write("nets/mynet.py", NOT_CONVERTIBLE), warning=True),
    # command line: flags and types
    Row("unknown-flag", (*T, "--no-such-flag", "3"), 2, "unrecognized arguments: --no-such-flag 3", unchanged=True),
    Row("unknown-flag-by-meaning", (*T, "--learning-rate", "0.1"), 2, "unrecognized arguments: --learning-rate 0.1; did you mean --lr?", unchanged=True),
    Row("unknown-flag-by-spelling", (*T, "--batchsize", "8"), 2, "unrecognized arguments: --batchsize 8; did you mean --batch-size?", unchanged=True),
    Row("abbreviated-flag", (*T, "--epoch", "3"), 2, "unrecognized arguments: --epoch 3", unchanged=True),
    Row("flag-without-value", (*T, "--epochs"), 2, "argument --epochs: expected one argument", unchanged=True),
    Row("int-flag-not-a-number", (*T, "--epochs", "two"), 2, "argument --epochs: invalid int value: 'two'", unchanged=True),
    Row("int-flag-given-a-float", (*T, "--batch-size", "1.5"), 2, "argument --batch-size: invalid int value: '1.5'", unchanged=True),
    Row("float-flag-not-a-number", (*T, "--momentum", "abc"), 2, "argument --momentum: invalid float value: 'abc'", unchanged=True),
    Row("lr-not-a-number-or-auto", (*T, "--lr", "abc"), 2, "argument --lr: must be a number such as 0.01, or auto; got 'abc'",
        unchanged=True),
    Row("time-budget-not-a-duration", (*T, "--time-budget", "soon"), 2,
        "time_budget must be a duration above 0 such as 90s, 20m or 1.5h (a bare number is seconds), got 'soon'", unchanged=True),
    Row("lr-find-end-below-start", ("lr-find", *T, "--start-lr", "1", "--end-lr", "0.1"), 2,
        "end_lr (0.1) must be above start_lr (1): the sweep climbs from one to the other", unchanged=True),
    Row("bad-choice-optimizer", (*T, "--optimizer", "rmsprop"), 2, "argument --optimizer: invalid choice: 'rmsprop'", unchanged=True),
    Row("bad-choice-amp", (*T, "--amp", "O3"), 2, "argument --amp: invalid choice: 'O3'", unchanged=True),
    Row("bad-choice-lr-schedule", (*T, "--lr-schedule", "poly"), 2, "argument --lr-schedule: invalid choice: 'poly'", unchanged=True),
    Row("bad-device", (*T, "--device", "npu"), 2, "device 'npu' is not valid; use auto, cpu, gpu or gpu:N", unchanged=True),
    Row("bad-device-index", (*T, "--device", "gpu:x"), 2, "device 'gpu:x' is not valid", unchanged=True),
    Row("bad-threads", (*T, "--threads", "many"), 2, "threads 'many' is not valid; use a positive integer or 'auto'", unchanged=True),
    Row("zero-threads", (*T, "--threads", "0"), 2, "threads '0' is not valid", unchanged=True),
    Row("gpu-and-cpu", (*T, "--gpu", "--device", "cpu"), 2, "--gpu and --device cpu contradict each other", unchanged=True),
    Row("line-break-in-a-value", (*T, "--model", "lenet\nrm -rf"), 2, "model 'lenet\\nrm -rf' is not known", unchanged=True),
    Row("missing-positional", ("evaluate",), 2, "the following arguments are required: RUN", unchanged=True),
    # command line: numbers out of range
    *[Row(f"range-{name}", (*T, flag, value), 2, phrase, unchanged=True) for name, flag, value, phrase in [
        ("epochs-zero", "--epochs", "0", "epochs must be >= 1, got 0"),
        ("batch-size-zero", "--batch-size", "0", "batch_size must be >= 1, got 0"),
        ("lr-zero", "--lr", "0", "lr must be > 0.0, got 0.0"),
        ("lr-nan", "--lr", "nan", "lr must be a finite number, got nan"),
        ("lr-overflow", "--lr", "1e400", "lr must be a finite number, got inf"),
        ("momentum-1", "--momentum", "1", "momentum must be >= 0.0 and < 1.0, got 1.0"),
        ("momentum-negative", "--momentum", "-0.1", "momentum must be >= 0.0 and < 1.0, got -0.1"),
        ("weight-decay-negative", "--weight-decay", "-1", "weight_decay must be >= 0.0, got -1.0"),
        ("lr-gamma-zero", "--lr-gamma", "0", "lr_gamma must be > 0.0"),
        ("lr-gamma-above-1", "--lr-gamma", "1.5", "lr_gamma must be > 0.0 and < 1.0, got 1.5"),
        ("lr-step-epochs-zero", "--lr-step-epochs", "0", "lr_step_epochs must be >= 1, got 0"),
        ("warmup-epochs-negative", "--warmup-epochs", "-1", "warmup_epochs must be >= 0, got -1"),
        ("seed-negative", "--seed", "-1", "seed must be >= 0, got -1"),
        ("seed-too-large", "--seed", str(2 ** 40), "seed must be <= 4294967295"),
        ("val-split-1", "--val-split", "1", "val_split must be >= 0.0 and < 1.0, got 1.0"),
        ("synthetic-size-zero", "--synthetic-size", "0", "synthetic_size must be >= 1, got 0"),
        ("synthetic-size-huge", "--synthetic-size", "1000000000000", "synthetic_size must be at most 1000000 (images held in memory)"),
        ("monitor-unknown", "--monitor", "nosuch", "monitor 'nosuch' is not a metric a run logs; choose one of: loss, acc_top1"),
        ("num-workers-negative", "--num-workers", "-1", "num_workers must be >= 0, got -1"),
        ("eval-freq-zero", "--eval-freq", "0", "eval_freq must be >= 1, got 0"),
        ("log-freq-zero", "--log-freq", "0", "log_freq must be >= 1, got 0"),
        ("verbose-negative", "--verbose", "-1", "verbose must be >= 0, got -1"),
        ("save-freq-zero", "--save-freq", "0", "save_freq must be >= 1, got 0"),
        ("keep-last-zero", "--keep-last", "0", "keep_last must be >= 1, got 0"),
        ("early-stopping-patience-zero", "--early-stopping-patience", "0", "early_stopping_patience must be >= 1, got 0"),
        ("min-delta-negative", "--min-delta", "-1", "min_delta must be >= 0.0, got -1.0"),
        ("baseline-inf", "--baseline", "inf", "baseline must be a finite number, got inf"),
        ("start-from-epoch-negative", "--start-from-epoch", "-1", "start_from_epoch must be >= 0, got -1"),
        ("plateau-factor-1", "--plateau-factor", "1", "plateau_factor must be > 0.0 and < 1.0, got 1.0"),
        ("plateau-patience-zero", "--plateau-patience", "0", "plateau_patience must be >= 1, got 0"),
        ("prefetch-factor-zero", "--prefetch-factor", "0", "prefetch_factor must be >= 1, got 0"),
        ("label-smoothing-1", "--label-smoothing", "1", "label_smoothing must be >= 0.0 and < 1.0, got 1.0"),
        ("mixup-negative", "--mixup", "-1", "mixup must be >= 0.0, got -1.0"),
        ("cutmix-negative", "--cutmix", "-0.5", "cutmix must be >= 0.0, got -0.5"),
        ("mix-prob-above-1", "--mix-prob", "1.5", "mix_prob must be >= 0.0 and <= 1.0, got 1.5"),
        ("randaugment-above-10", "--randaugment", "11", "randaugment must be >= 0.0 and <= 10.0, got 11.0"),
        ("random-erasing-above-1", "--random-erasing", "1.5", "random_erasing must be >= 0.0 and <= 1.0, got 1.5"),
        ("ema-1", "--ema", "1.0", "ema must be > 0.0 and < 1.0, got 1.0"),
        ("ema-zero", "--ema", "0", "ema must be > 0.0 and < 1.0, got 0.0"),
        ("clip-grad-negative", "--clip-grad", "-1", "clip_grad must be > 0.0, got -1.0"),
        ("accumulate-grad-batches-zero", "--accumulate-grad-batches", "0", "accumulate_grad_batches must be >= 1, got 0"),
    ]],
    Row("multistep-not-increasing", (*T, "--lr-schedule", "multistep", "--lr-step-epochs", "5", "3"), 2,
        "lr_step_epochs must be increasing for multistep, got [5, 3]", unchanged=True),
    Row("warmup-not-below-epochs", (*T, "--warmup-epochs", "2", "--lr-schedule", "cosine", *RUN), 2,
        "warmup_epochs 2 is not below epochs 1: the rate would never reach lr 0.01 and the cosine schedule would never run; "
        "pass --warmup-epochs below 1 (0: none), or --epochs 3 or more", unchanged=True),
    Row("val-split-leaves-nothing", (*T, "--val-split", "0.999", *RUN), 2, "val_split 0.999 leaves 64 of 64 samples for evaluation", unchanged=True),
    Row("evaluate-batch-size-0", ("evaluate", "{shared}", "--batch-size", "0"), 2, "batch_size must be >= 1, got 0", unchanged=True),
    Row("predict-top-k-0", ("predict", "{shared}", "{shared}", "--top-k", "0"), 2, "top_k must be >= 1, got 0.", unchanged=True),
    # config files
    Row("config-missing", (*T, "--config", CFG + "nope.yaml"), 2, "config file '{tmp}/cfg/nope.yaml' does not exist", unchanged=True),
    Row("config-is-a-folder", (*T, "--config", "{tmp}"), 2, "is a folder; pass the path of a .yaml or .json file", unchanged=True),
    Row("config-unknown-key", (*T, "--config", CFG + "c.yaml"), 2, "unknown key 'epoch'. Did you mean 'epochs'? Allowed keys: model, dataset",
        config("c.yaml", "epoch: 3\n"), unchanged=True),
    Row("config-key-by-meaning", (*T, "--config", CFG + "c.yaml"), 2, "unknown key 'learning_rate'. Did you mean 'lr'? Allowed keys:",
        config("c.yaml", "learning_rate: 0.1\n"), unchanged=True),
    Row("config-invalid-yaml", (*T, "--config", CFG + "c.yaml"), 2, "is not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1",
        config("c.yaml", "epochs: [1\n"), unchanged=True),
    Row("config-invalid-json", (*T, "--config", CFG + "c.json"), 2, "is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 14",
        config("c.json", '{"epochs": 1,}'), unchanged=True),
    Row("config-json-nan", (*T, "--config", CFG + "c.json"), 2, "lr must be a finite number, got nan",
        config("c.json", '{"lr": NaN}'), unchanged=True),
    Row("config-not-a-mapping", (*T, "--config", CFG + "c.yaml"), 2, "must hold a mapping of keys to values, got list",
        config("c.yaml", "- epochs\n- 3\n"), unchanged=True),
    Row("config-not-utf8", (*T, "--config", CFG + "c.yaml"), 2, "cannot be read: 'utf-8' codec can't decode byte 0xff",
        config("c.yaml", b"\xff\xfe epochs: 3\n"), unchanged=True),
    Row("config-wrong-type", (*T, "--config", CFG + "c.yaml"), 2, "epochs must be an integer >= 1, got 'five'",
        config("c.yaml", "epochs: five\n"), unchanged=True),
    Row("config-bool-for-int", (*T, "--config", CFG + "c.json"), 2, "epochs must be an integer >= 1, got True",
        config("c.json", '{"epochs": true}'), unchanged=True),
    Row("config-path-not-a-string", (*T, "--config", CFG + "c.json"), 2, "save_dir must be a path (a string), got 5",
        config("c.json", '{"save_dir": 5}'), unchanged=True),
    Row("config-path-with-nul", (*T, "--config", CFG + "c.json"), 2, "save_dir 'a\\x00b' holds a NUL character",
        config("c.json", '{"save_dir": "a\\u0000b"}'), unchanged=True),
    Row("config-huge-number", (*T, "--config", CFG + "c.json"), 2, "lr must be a finite number, got 1000000",
        config("c.json", '{"lr": 1' + "0" * 400 + "}"), unchanged=True),
    Row("config-list-expected", (*T, "--config", CFG + "c.yaml"), 2, "lr_step_epochs must be a non-empty list of epochs, got 5",
        config("c.yaml", "lr_step_epochs: 5\n"), unchanged=True),
    # data files
    Row("data-dir-not-a-folder", (*MNIST[:2], "--data-dir", "{tmp}/nowhere", *MNIST[4:]), 2,
        "data_dir '{tmp}/nowhere' is not a folder; pass the folder that holds train-images-idx3-ubyte.gz", unchanged=True),
    Row("data-dir-not-read", ("--data-dir", "{tmp}/images", "--epochs", "1", "--verbose", "0", "--threads", "1", *RUN), 2,
        "data_dir '{tmp}/images' is not read by dataset 'fashion-mnist-mini', which is embedded in the package; the datasets that read a folder are cifar10, cifar100, fashion-mnist, folder, mnist: add --dataset NAME (folder for your own images)",
        mkdir("images"), unchanged=True),
    Row("data-dir-missing-not-read", (*T, "--data-dir", "{tmp}/nowhere", *RUN), 2,
        "data_dir '{tmp}/nowhere' is not read by dataset 'synthetic', which is generated; the datasets that read a folder are", unchanged=True),
    Row("data-missing-download-off", CIFAR, 1,
        "cifar10: cifar-10-python.tar.gz not found in {tmp}/data, {tmp}/paddle-cache/cifar, {tmp}/no-debian and download is off; put the files in one of those folders or pass --data-dir FOLDER",
        steps(mkdir("data"), no_system_copies), unchanged=True),
    Row("data-download-fails", tuple(a for a in MNIST if a != "--no-download"), 1,
        "not found in {tmp}/data, {tmp}/paddle-cache/mnist, {tmp}/no-debian and download failed (ConnectionError: [Errno 101] Network is unreachable)",
        steps(mkdir("data"), download_fails), unchanged=True),
    Row("idx-truncated-gzip", MNIST, 1, "{tmp}/data/train-images-idx3-ubyte.gz: gzip data is truncated (the download was probably cut short); delete it",
        mnist_files(truncate("train-images-idx3-ubyte.gz")), unchanged=True),
    Row("idx-not-gzip", MNIST, 1, "{tmp}/data/train-labels-idx1-ubyte.gz: is not gzip-compressed although its name ends in .gz",
        mnist_files(lambda d: (d / "train-labels-idx1-ubyte.gz").write_text("<html>404 Not Found</html>")), unchanged=True),
    Row("idx-wrong-magic", MNIST, 1, "{tmp}/data/train-images-idx3-ubyte.gz: bad IDX magic number 0x00000d03 (expected 0x00000801 for labels or 0x00000803 for images)",
        mnist_files(wrong_magic), unchanged=True),
    Row("idx-wrong-size", MNIST, 1, "{tmp}/data/train-images-idx3-ubyte.gz: IDX payload truncated: header says 32x28x28 = 25088 bytes, file holds 24988",
        mnist_files(short_payload), unchanged=True),
    Row("idx-count-mismatch", MNIST, 1, "{tmp}/data/train-labels-idx1-ubyte.gz: holds 31 labels but {tmp}/data/train-images-idx3-ubyte.gz holds 32 images",
        mnist_files(fewer_labels), unchanged=True),
    Row("cifar-truncated", CIFAR, 1, "{tmp}/data/cifar-10-python.tar.gz: archive is truncated (the download was probably cut short)",
        truncated_cifar, unchanged=True),
    Row("cifar-missing-member", CIFAR, 1, "{tmp}/data/cifar-10-python.tar.gz: archive has no member 'cifar-10-batches-py/data_batch_3'",
        cifar(lambda m: m.pop("cifar-10-batches-py/data_batch_3")), unchanged=True),
    Row("cifar-wrong-shape", CIFAR, 1, "{tmp}/data/cifar-10-python.tar.gz: member 'cifar-10-batches-py/data_batch_2' has data of shape (8, 3000) and dtype uint8, expected uint8 of shape (N, 3072)",
        cifar(cut_columns), unchanged=True),
    Row("paddle-cache-md5-mismatch", tuple(a for a in MNIST if a not in ("--data-dir", "{tmp}/data")), 1,
        "{tmp}/paddle-cache/mnist/train-images-idx3-ubyte.gz: gzip data is truncated (the download was probably cut short); this file in Paddle's download cache does not match the MD5 checksum Paddle publishes for it",
        in_paddle_cache, unchanged=True),
    # environment
    Row("gpu-on-cpu-build", (*T, "--gpu", *RUN), 1, "a GPU was asked for, but this Paddle", unchanged=True, skip=no_cuda_build),
    Row("gpu-index-on-cpu-build", (*T, "--device", "gpu:1", *RUN), 1, "is a CPU-only build; install the GPU build", unchanged=True, skip=no_cuda_build),
    Row("gpu-device-query-fails", (*T, "--gpu", *RUN), 1, "a GPU was asked for, but none is visible",
        gpu_build(query_error=OSError("cudaGetDeviceCount: no CUDA-capable device is detected")), unchanged=True),
    Row("gpu-index-under-launcher", (*T, "--device", "gpu:2", *RUN), 2,
        "--device gpu:2 names a card, but paddle.distributed.launch gives each process its own (FLAGS_selected_gpus=3 here)",
        gpu_build(PADDLE_TRAINER_ID="0", PADDLE_TRAINERS_NUM="1", FLAGS_selected_gpus="3"), unchanged=True),
    Row("amp-on-cpu", (*T, *LEAN, "--amp", "O1", "--device", "cpu", *RUN), 0,
        "amp O1 applies to GPU training only; this run is on the CPU and trains in float32", warning=True),
    Row("save-dir-is-a-file", (*T, "--save-dir", "{tmp}/file/run"), 2, "save_dir '{tmp}/file/run': '{tmp}/file' is a file, not a folder; choose another --save-dir",
        write("file", "keep me"), unchanged=True),
    Row("save-dir-unwritable", (*T, "--save-dir", "{tmp}/locked/run"), 2, "save_dir '{tmp}/locked/run' cannot be written ('{tmp}/locked' is not writable)",
        unwritable, unchanged=True),
    Row("disk-full-at-start", (*T, *LEAN, *RUN), 1, "No space left on device; free some space or choose another --save-dir", disk_full),
    Row("disk-full-at-checkpoint", (*T, *LEAN, *RUN), 1, "No space left on device", disk_full_at_checkpoint),
    Row("dataloader-worker-dies", (*T, *LEAN, "--epochs", "2", "--batch-size", "16", "--num-workers", "2", *RUN), 0,
        "); a small /dev/shm is the usual cause: continuing with use_shared_memory=False",
        dying_worker, warning=True),
    Row("nan-loss", (*T, *LEAN, "--lr", "1e8", *RUN), 1, "loss became nan at epoch 1, step 2; the last checkpoint (if any) is intact; lower --lr or check the data"),
    # run folders and checkpoints
    Row("finished-run-without-overwrite", (*T, "--save-dir", "{run}"), 2, "already holds a finished run (results.json); pass --overwrite to replace it", unchanged=True),
    Row("resume-nothing-to-resume", (*T, "--resume", "--output-root", "{tmp}/output"), 2,
        "--resume: no run of lenet-synthetic under '{tmp}/output' has a checkpoint; pass the run folder (--resume PATH) or train without --resume first", unchanged=True),
    Row("resume-path-missing", (*T, "--resume", "{tmp}/nowhere"), 2, "checkpoint path '{tmp}/nowhere' does not exist", unchanged=True),
    Row("resume-finished-run", (*T, "--epochs", "2", "--resume", "{run}"), 2, "the checkpoint is at epoch 2 and --epochs is 2; pass --epochs above 2", unchanged=True),
    Row("resume-another-model", (*T, "--epochs", "3", "--resume", "{run}", "--model", "resnet18"), 2,
        "checkpoint is for model lenet, this run is resnet18; resume with the same settings", unchanged=True),
    Row("resume-another-optimizer", (*T, "--epochs", "3", "--resume", "{run}", "--optimizer", "adam"), 2,
        "checkpoint was trained with optimizer Momentum, this run uses Adam", unchanged=True),
    Row("resume-ema-turned-on", (*T, "--epochs", "3", "--resume", "{run}", "--ema", "0.99"), 2,
        "checkpoint is for EMA decay (--ema) off, this run is 0.99; resume with the same settings", unchanged=True),
    Row("resume-accumulation-changed", (*T, "--epochs", "3", "--resume", "{run}", "--accumulate-grad-batches", "2"), 2,
        "checkpoint is for batches per optimizer step (--accumulate-grad-batches) 1, this run is 2; resume with the same settings",
        unchanged=True),
    Row("resume-into-another-save-dir", (*T, "--epochs", "3", "--resume", "{run}", "--save-dir", "{tmp}/elsewhere"), 2,
        "--resume continues in the run's own folder", unchanged=True),
    Row("corrupt-checkpoint-falls-back", (*T, *LEAN, "--epochs", "3", "--resume", "{run}"), 0,
        "model.pdparams does not match its sha256 (truncated or corrupt). Trying the previous checkpoint", corrupt_params(2), warning=True),
    Row("all-checkpoints-corrupt", (*T, *LEAN, "--epochs", "3", "--resume", "{run}"), 1,
        "no usable checkpoint at or before 'runcopy/checkpoints/epoch_2'", corrupt_params(1, 2), unchanged=True),
    Row("pretrained-missing", (*T, "--pretrained", "{tmp}/nope.pdparams", *RUN), 2, "pretrained weights '{tmp}/nope.pdparams' do not exist", unchanged=True),
    Row("pretrained-not-weights", (*T, "--pretrained", "{tmp}/file", *RUN), 1, "pretrained weights '{tmp}/file' cannot be read (",
        write("file", "not a pdparams"), unchanged=True),
    Row("pretrained-another-model", (*T, "--model", "resnet18", "--pretrained", "{shared}/checkpoints/last/model.pdparams", *RUN), 1,
        "share no tensor with ResNet; are they for another model?", unchanged=True),
    # your own images
    Row("folder-without-data-dir", (*T, "--dataset", "folder", *RUN), 2, "--dataset folder needs --data-dir DIR", unchanged=True),
    Row("folder-option-of-another-dataset", (*T, "--channels", "1", *RUN), 2,
        "--channels applies to --dataset folder (your own images), not to 'synthetic'", unchanged=True),
    Row("folder-cache-limit-not-a-size", (*FOLDER, "--cache-limit", "lots"), 2,
        "cache_limit must be a size such as 20G, 500M or 0", folder_tree(), unchanged=True),
    Row("folder-no-train-folder", (*FOLDER,), 2, "data_dir '{tmp}/images' has no train/ folder; lay images out as {tmp}/images/train/<class>/...", mkdir("images"), unchanged=True),
    Row("folder-unreadable-image", (*FOLDER,), 1, "{tmp}/images/train/coat/broken.png: cannot be read as an image (OSError: image file is truncated); 1 more bad images found", folder_tree(two_bad_images)),
    Row("folder-skip-bad-images", (*FOLDER, "--skip-bad-images"), 0, "2 unreadable image(s) skipped; their list: {tmp}/run/bad_images.txt",
        folder_tree(two_bad_images), warning=True),
    Row("folder-no-class-folders", (*FOLDER,), 2, "{tmp}/images/train: no class folders; put each class's images in", mkdir("images/train")),
    Row("folder-empty-class", (*FOLDER,), 2, "{tmp}/images/train/hat: class folder holds no images", folder_tree(empty_class)),
    Row("folder-single-class", (*FOLDER,), 2, "only one class folder ('bag'); a classifier needs at least two classes", folder_tree(classes=("bag",))),
    Row("folder-val-class-training-lacks", (*FOLDER,), 2, "{tmp}/images/val: class folder 'hat' is not a training class", folder_tree(val_class_training_lacks)),
    Row("folder-list-file-missing", ("--dataset", "folder", "--data-dir", "{tmp}/images", "--train-list", "{tmp}/images/train.txt",
                                     "--image-size", "28", *FOLDER_RUN, *RUN), 1,
        "{tmp}/images/train.txt line 3: image '{tmp}/images/train/dress/gone.png' does not exist", folder_tree(list_with_missing_file)),
    Row("folder-resume-classes-changed", ("--resume", "{tmp}/run", "--epochs", "2"), 2, "checkpoint is for classes 3, this run is 4",
        trained_folder_run),
    # evaluate, predict, export
    Row("evaluate-not-a-run", ("evaluate", "{tmp}"), 2, "'{tmp}' has no config.json, so it is not a hapi_runner run folder", unchanged=True),
    Row("evaluate-damaged-config", ("evaluate", "{run}"), 1, "{tmp}/runcopy/config.json cannot be read (JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); the run folder is damaged",
        damaged_config_json, unchanged=True),
    Row("evaluate-network-built-in-python", ("evaluate", "{run}"), 2,
        "this run trained a network built in Python (<python object: LeNet>), which its config.json cannot rebuild; build it "
        "again and pass it: Runner(config, network=net) to train, hapi_runner.deploy.evaluate_run(RUN, network=net) or "
        "export_run(RUN, network=net).",
        network_built_in_python, unchanged=True),
    Row("evaluate-another-shape", ("evaluate", "{shared}", "--dataset", "cifar10"), 2,
        "dataset cifar10 has 10 classes of 3-channel images; the model was trained on synthetic (10 classes of 1-channel images): pick a dataset of that shape", unchanged=True),
    Row("evaluate-corrupt-checkpoint", ("evaluate", "{run}", "--checkpoint", "{run}/checkpoints/epoch_2"), 1,
        "checkpoint 'runcopy/checkpoints/epoch_2': model.pdparams does not match its sha256 (truncated or corrupt)", corrupt_params(2), unchanged=True),
    Row("predict-not-an-image", ("predict", "{shared}", "{tmp}/images/text.png"), 2,
        "'{tmp}/images/text.png' is not an image Pillow can read; pass PNG, JPEG, BMP or .npy files", image_files, unchanged=True),
    Row("predict-truncated-image", ("predict", "{shared}", "{tmp}/images/cut.png"), 2,
        "'{tmp}/images/cut.png' cannot be decoded (", image_files, unchanged=True),
    Row("predict-empty-folder", ("predict", "{shared}", "{tmp}/images/empty"), 2,
        "folder '{tmp}/images/empty' has no images (.png, .jpg, .jpeg, .bmp, .webp, .tif, .tiff, .npy)", image_files, unchanged=True),
    Row("predict-folder-without-export", ("predict", "{tmp}/no_export", "{tmp}/images/text.png"), 1,
        "'{tmp}/no_export' holds no exported model (hapi_runner.json not found there or in its inference/); export it first", image_files, unchanged=True),
    Row("predict-missing-file", ("predict", "{shared}", "{tmp}/images/missing.png"), 2,
        "'{tmp}/images/missing.png' does not exist; pass image files", image_files, unchanged=True),
    Row("predict-tensorrt-on-pir-graph", ("predict", "{shared}", "{tmp}/images/ok.npy", "--device", "gpu", "--tensorrt", "fp16"), 1,
        "TensorRT runs on .pdmodel graphs only, and ", one_image, unchanged=True, skip=pir_export_only),
    Row("predict-npy-wrong-shape", ("predict", "{shared}", "{tmp}/images/wrong.npy"), 2,
        "holds an array of shape [1, 5, 5]; expected [28, 28], [28, 28, C] or [C, 28, 28]", image_files, unchanged=True),
    Row("export-onnx-without-paddle2onnx", ("export", "{shared}", "--format", "onnx"), 1,
        "--format onnx needs paddle2onnx: pip install 'hapi-runner[onnx]'", without_paddle2onnx, unchanged=True),
    Row("export-unknown-format", ("export", "{shared}", "--format", "tflite"), 2, "argument --format: invalid choice: 'tflite'", unchanged=True),
    # report and compare
    Row("report-not-a-run", ("report", "{tmp}"), 2, "'{tmp}' has no config.json, so it is not a hapi_runner run folder", unchanged=True),
    Row("report-no-checkpoint", ("report", "{run}"), 2,
        "has no checkpoint (no checkpoints/epoch_N/state.json), so there are no weights to evaluate", without_checkpoints, unchanged=True),
    Row("report-still-training", ("report", "{run}"), 2, "is still training (process", written_by_a_live_process, unchanged=True),
    Row("report-unfinished", ("report", "{run}"), 2, "has no results.json: its training is still going or was killed before the end",
        without_results, unchanged=True),
    Row("report-max-images-negative", ("report", "{shared}", "--max-images", "-1"), 2, "max_images must be >= 0, got -1", unchanged=True),
    Row("compare-one-run", ("compare", "{shared}"), 2, "compare needs two run folders or more, got 1", unchanged=True),
]


# --- running a row -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One trained run for every row that needs one: 2 epochs (checkpoints epoch_1, epoch_2), exported."""
    run = tmp_path_factory.mktemp("errors") / "shared"
    assert main([*T, "--epochs", "2", "--no-visualdl", "--save-dir", str(run)]) == 0
    return run


def snapshot(*roots):
    """{path: bytes or 'dir' or 'link -> target'} of everything under ``roots``."""
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    state[path] = f"link -> {os.readlink(path)}"
                elif os.path.isdir(path):
                    state[path] = "dir"
                else:
                    with open(path, "rb") as fh:
                        state[path] = fh.read()
    return state


def fill(text, ctx, copy):
    text = text.replace("{tmp}", str(ctx.tmp)).replace("{shared}", str(ctx.shared))
    return text.replace("{run}", str(copy)) if copy is not None else text


def log_message(row, code, line, ctx):
    target = os.environ.get("HAPI_RUNNER_ERRORS_LOG")
    if target:
        shown = line.replace(str(ctx.tmp), "TMP").replace(str(ctx.shared), "RUN")
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": row.id, "code": code, "line": shown}) + "\n")


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row, shared_run, tmp_path, monkeypatch, capsys):
    reason = row.skip() if row.skip else None
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # a stray default output/ folder would land here, and be seen
    ctx = Ctx(tmp_path, shared_run, monkeypatch)
    if row.prepare:
        row.prepare(ctx)
    copy = ctx.run_copy() if any("{run}" in a for a in row.argv) else None
    argv = [fill(a, ctx, copy) for a in row.argv]
    roots = [tmp_path] + ([shared_run] if any("{shared}" in a for a in row.argv) else [])
    before = snapshot(*roots) if row.unchanged else None

    code = main(argv)
    out, err = capsys.readouterr()

    assert code == row.code, err
    assert "Traceback" not in err and "Traceback" not in out
    errors = [line for line in err.splitlines() if line.startswith("hapi-runner: error:")]
    phrase = fill(row.phrase, ctx, copy)
    if row.warning:
        assert errors == [], err
        warnings = [line for line in err.splitlines() if line.startswith("hapi_runner: WARNING:") and phrase in line]
        assert len(warnings) == 1, err
        line = warnings[0]
    else:
        assert len(errors) == 1, err
        line = errors[0]
        assert phrase in line, f"\n{line}\nlacks\n{phrase}"
        stray = [l for l in err.splitlines() if l.strip() and not l.startswith(("hapi-runner: error:", "hapi_runner: WARNING:", "hapi_runner: INFO:"))]
        assert stray == [], err
    log_message(row, code, line, ctx)
    if before is not None:
        after = snapshot(*roots)
        assert sorted(set(after) - set(before)) == [], "new files or folders"
        changed = [p for p in before if after.get(p) != before[p]]
        assert changed == [], "changed or removed"


def test_every_row_is_in_docs_errors_md():
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, flags=re.M))
    ids = {r.id for r in ROWS}
    assert sorted(ids - documented) == [], "rows missing from docs/errors.md"
    assert sorted(documented - ids) == [], "docs/errors.md rows without a test"


def test_row_ids_are_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


def test_a_cached_file_that_matches_paddles_checksum_keeps_the_readers_message(tmp_path, monkeypatch):
    """Only a checksum mismatch is blamed on the cache; a file Paddle itself vouches for keeps the reader's words."""
    import hashlib

    from hapi_runner.datasets import load_dataset, sources
    from hapi_runner.errors import DataFileError

    folder = Path(sources.PADDLE_CACHE) / "mnist"
    folder.mkdir(parents=True)
    write_mnist_files(folder, n_train=32, n_test=16, seed=1)
    truncate("train-images-idx3-ubyte.gz")(folder)
    digests = {name: hashlib.md5((folder / name).read_bytes()).hexdigest()
               for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    monkeypatch.setattr(sources, "_paddle_download_targets",
                        lambda spec, split: [(f"https://example.invalid/{n}", md5) for n, md5 in digests.items()])
    with pytest.raises(DataFileError) as excinfo:
        load_dataset("mnist", "train", download=False)
    message = str(excinfo.value)
    assert message.startswith(f"{folder / 'train-images-idx3-ubyte.gz'}: gzip data is truncated")
    assert "MD5" not in message
