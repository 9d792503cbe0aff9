"""Training under ``python -m paddle.distributed.launch``: one run folder, exact evaluation, resume.

The first tests check the pieces in one process (the evaluation sampler's layout against hapi's gather-and-cut,
the loss that skips fillers, the shuffle across ranks and epochs). The rest launch 2 CPU processes (gloo) on
300 synthetic MNIST-shaped images with a 75-image evaluation split (odd, so DistributedBatchSampler would repeat
one, and not a multiple of the 32-image global batch), then compare with a single-process ``hapi-runner
evaluate``. They skip, saying why, only if the launcher cannot start two processes that talk to each other.
"""

import json
import os
import signal
import subprocess
import sys
import types

import numpy as np
import paddle
import pytest

from hapi_runner.training import distributed
from hapi_runner.datasets.pipeline import FILLER_LABEL, BatchTransform, ImageDataset, eval_batch_sampler, make_loader
from hapi_runner.training.environment import resolve_threads
from hapi_runner.training.losses import ExactEvalCrossEntropy
from hapi_runner.training.runner import _EpochSeeder
from helpers import read_json, read_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_PY = os.path.join(ROOT, "train.py")
EVAL_SIZE = 300 // 4  # the synthetic test split is a quarter of --synthetic-size
FLAGS = ["--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "300", "--model", "lenet",
         "--batch-size", "16", "--threads", "1", "--verbose", "2", "--no-visualdl"]
DETERMINISTIC = ["train_loss", "train_acc_top1", "train_acc_top5", "eval_loss", "eval_acc_top1", "eval_acc_top5", "lr"]
LAUNCH_TIMEOUT = 120


# --- in one process ---------------------------------------------------------------------------------------

def hapi_gather_and_cut(per_rank_batches, dataset_size):
    """What hapi's DynamicGraphAdapter.eval_batch does with a distributed evaluation: for each step, the ranks'
    batches concatenated in rank order (all_gather), and the tail cut once the dataset's size is reached."""
    seen, count = [], 0
    for step in zip(*per_rank_batches):
        gathered = [index for batch in step for index in batch]
        if count + len(gathered) >= dataset_size:
            gathered, count = gathered[:dataset_size - count], 0
        else:
            count += len(gathered)
        seen += gathered
    return seen


@pytest.mark.parametrize("num_samples", [75, 76, 64, 63, 5, 3, 1])
@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_eval_sampler_gives_hapi_every_sample_once_in_order(num_samples, ranks, batch_size):
    per_rank = [list(eval_batch_sampler(num_samples, batch_size, num_replicas=ranks, rank=r)) for r in range(ranks)]
    # all_gather needs the same number of steps, and the same batch size at each step, on every rank
    assert len({len(batches) for batches in per_rank}) == 1
    for step in zip(*per_rank):
        assert len({len(batch) for batch in step}) == 1
    everything = sorted(i for batches in per_rank for batch in batches for i in batch)
    assert everything[:num_samples] == list(range(num_samples))
    assert all(i >= num_samples for i in everything[num_samples:])  # fillers, never a repeated sample
    assert hapi_gather_and_cut(per_rank, num_samples) == list(range(num_samples))


def test_the_default_distributed_sampler_repeats_samples_which_is_what_the_fillers_replace():
    from paddle.io import DistributedBatchSampler

    per_rank = [[i for batch in DistributedBatchSampler(range(EVAL_SIZE), 16, num_replicas=2, rank=r) for i in batch]
                for r in range(2)]
    assert sum(map(len, per_rank)) == EVAL_SIZE + 1 and 0 in per_rank[0] and 0 in per_rank[1]


def tiny_dataset(n=10):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    labels = np.arange(n) % 3
    return ImageDataset(images, labels, ["a", "b", "c"], None, BatchTransform([0.5], [0.25]))


def test_the_eval_loader_reads_each_sample_once_and_labels_fillers():
    data = tiny_dataset()
    labels = np.concatenate([np.asarray(batch[1]).ravel() for batch in make_loader(data, 4, shuffle=False, evaluation=True)])
    np.testing.assert_array_equal(labels, data.labels)  # one process: no fillers at all
    loader = make_loader(data, 4, shuffle=False, evaluation=True)
    # hapi cuts the gathered fillers only from a paddle.io.DataLoader whose dataset has the real length
    assert isinstance(loader, paddle.io.DataLoader) and len(loader.dataset) == len(data)
    images, filler_labels = make_loader(data, 4, shuffle=False, evaluation=True).collate_fn([8, 9, 10, 11])
    assert images.shape == (4, 1, 4, 4)
    np.testing.assert_array_equal(filler_labels.ravel(), [data.labels[8], data.labels[9], FILLER_LABEL, FILLER_LABEL])
    with pytest.raises(ValueError, match="shuffle=False"):
        make_loader(data, 4, shuffle=True, evaluation=True)


def test_the_eval_loss_skips_fillers_and_the_training_loss_is_plain_cross_entropy():
    paddle.seed(0)
    logits = paddle.randn([6, 3])
    labels = paddle.to_tensor([[0], [1], [2], [1], [FILLER_LABEL], [FILLER_LABEL]], dtype="int64")
    loss = ExactEvalCrossEntropy()
    expected = paddle.nn.functional.cross_entropy(logits[:4], labels[:4])
    with paddle.no_grad():  # as hapi's eval_batch runs it
        np.testing.assert_allclose(float(loss(logits, labels)), float(expected), rtol=1e-6)
        assert float(loss(logits[4:], labels[4:])) == 0.0  # a batch of fillers alone stays finite
    real = labels[:4]
    np.testing.assert_allclose(float(loss(logits[:4], real)), float(paddle.nn.CrossEntropyLoss()(logits[:4], real)), rtol=1e-6)


def test_every_epoch_shuffles_anew_and_the_ranks_share_out_the_data():
    from paddle.io import DistributedBatchSampler

    from hapi_runner.datasets.pipeline import ImageLoader

    data = tiny_dataset(32)

    def order(rank, epoch):
        loader = ImageLoader(data, batch_sampler=DistributedBatchSampler(range(32), 4, num_replicas=2, rank=rank, shuffle=True))
        loader.transform = data.transform
        _EpochSeeder(loader, seed=3).set_epoch(epoch)
        return [i for batch in loader.batch_sampler for i in batch]

    for epoch in (0, 1):
        assert sorted(order(0, epoch) + order(1, epoch)) == list(range(32))  # disjoint halves, together everything
    assert order(0, 0) != order(0, 1)
    assert order(0, 1) == order(0, 1)  # a function of (seed, epoch): a resumed run repeats it


def test_rank_world_and_threads_come_from_the_launcher_environment(monkeypatch):
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.on_main(lambda: "decided") == "decided"
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "4")
    monkeypatch.setenv("PADDLE_TRAINER_ID", "3")
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "2")
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (4, 3, False)
    cores = len(os.sched_getaffinity(0))
    assert resolve_threads("auto", "resnet18") == max(1, cores // 2)  # the machine's cores shared by its 2 processes


# --- launched: 2 CPU processes ----------------------------------------------------------------------------

def launcher_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected", "POD_"))}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def launch(args, log_dir, cwd):
    """``python -m paddle.distributed.launch --nproc_per_node 2 ARGS``; the whole process group is killed on timeout."""
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(log_dir), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=cwd, env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[killed after {LAUNCH_TIMEOUT} s]"
        return 124, out
    return proc.returncode, out


def worker_log(log_dir, rank):
    path = os.path.join(log_dir, f"workerlog.{rank}")
    return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""


PROBE = """
import paddle, paddle.distributed as dist
dist.init_parallel_env()
x = paddle.to_tensor([1.0])
dist.all_reduce(x)
assert float(x) == 2.0, float(x)
print("probe ok", flush=True)
"""


def skip_unless_launch_works(tmp, failed_output):
    """After a failed launch: skip if two bare processes cannot talk either (the machine), else fail (our code)."""
    probe = tmp / "probe.py"
    probe.write_text(PROBE)
    code, out = launch([probe], tmp / "probe-log", tmp)
    if code != 0:
        tail = "\n".join((out + worker_log(tmp / "probe-log", 0)).strip().splitlines()[-6:])
        pytest.skip(f"paddle.distributed.launch cannot start 2 CPU processes that all_reduce over gloo here (exit {code}): {tail}")
    pytest.fail(f"the launched training failed, though a bare 2-process launch works:\n{failed_output[-4000:]}")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Two epochs launched on 2 processes, then --resume to 3 under the launcher, and an unbroken 3-epoch launch."""
    tmp = tmp_path_factory.mktemp("launched")
    runs = {}
    for name, extra in (("first", ["--output-root", tmp / "out", "--epochs", "2"]),
                        ("resumed", ["--output-root", tmp / "out", "--epochs", "3", "--resume"]),
                        ("unbroken", ["--output-root", tmp / "unbroken", "--epochs", "3", "--no-export"])):
        code, out = launch([TRAIN_PY, *FLAGS, *extra], tmp / f"log-{name}", tmp)
        if code != 0:
            skip_unless_launch_works(tmp, out + worker_log(tmp / f"log-{name}", 0) + worker_log(tmp / f"log-{name}", 1))
        runs[name] = types.SimpleNamespace(out=out, logs=[worker_log(tmp / f"log-{name}", r) for r in (0, 1)])
    runs["tmp"] = tmp
    return runs


def only_run(root):
    base = os.path.join(root, "lenet-synthetic")
    assert sorted(os.listdir(base)) == ["run_001"], "every rank must use the one folder rank 0 chose"
    return os.path.join(base, "run_001")


@pytest.mark.slow
def test_a_launched_run_writes_one_run_folder_from_rank_0(launched):
    run = only_run(launched["tmp"] / "out")
    for name in ("config.json", "metrics.csv", "curves.png", "results.json", "checkpoints/last/model.pdparams",
                 "inference/hapi_runner.json"):
        assert os.path.exists(os.path.join(run, name)), name
    assert not os.path.exists(os.path.join(run, "visualdl"))
    first = launched["first"]
    assert first.out.count("hapi_runner: done in") == 1
    assert "2 processes, batch 16 each (32 in all)" in first.out
    assert "hapi_runner:" not in first.logs[1], "rank 1 must not print the run's lines again"
    assert "Traceback" not in first.logs[0] + first.logs[1]


@pytest.mark.slow
def test_the_distributed_evaluation_equals_a_single_process_evaluate(launched):
    run = only_run(launched["tmp"] / "out")
    proc = subprocess.run([sys.executable, "-m", "hapi_runner", "evaluate", run, "--json"], cwd=launched["tmp"],
                          env=launcher_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    single = json.loads(proc.stdout)
    assert single["num_samples"] == EVAL_SIZE and single["epoch"] == 3
    logged = read_json(os.path.join(run, "results.json"))["final_eval"]
    last_row = read_rows(run)[-1]
    # Exact: a sample counted twice (or missed) would move top-1 by a 75th or a 76th.
    assert logged["acc_top1"] == single["acc_top1"] and float(last_row["eval_acc_top1"]) == pytest.approx(single["acc_top1"], abs=1e-6)
    assert logged["acc_top5"] == single["acc_top5"]
    # The loss is averaged over both ranks' real samples: each rank's own (what hapi logs) is a different figure.
    # evaluate applies the temperature the run fitted at its end; training logged the loss before it.
    assert logged["loss"] == pytest.approx(single["loss_uncalibrated"], rel=1e-5)
    # Rank 0 alone predicted every evaluation image for the report, once, as evaluate does.
    assert read_json(os.path.join(run, "results.json"))["class_metrics"]["confusion_matrix"] == single["confusion_matrix"]
    assert os.path.isfile(os.path.join(run, "report.html")) and launched["resumed"].out.count("hapi_runner: report: ") == 1


@pytest.mark.slow
def test_resume_under_the_launcher_continues_like_an_unbroken_launch(launched):
    run = only_run(launched["tmp"] / "out")
    resumed = launched["resumed"]
    assert "resuming after epoch 2 of 3" in resumed.out
    results = read_json(os.path.join(run, "results.json"))
    assert results["epochs_run"] == 3 and results["resumed_from_epoch"] == 2
    rows, unbroken = read_rows(run), read_rows(only_run(launched["tmp"] / "unbroken"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for mine, theirs in zip(rows, unbroken):
        for key in DETERMINISTIC:
            assert float(mine[key]) == pytest.approx(float(theirs[key]), rel=1e-5, abs=1e-7), (mine["epoch"], key)


@pytest.mark.slow
def test_a_refusal_stops_every_rank_with_the_same_line(launched, tmp_path):
    code, out = launch([TRAIN_PY, *FLAGS, "--output-root", tmp_path / "empty", "--epochs", "1", "--resume"],
                       tmp_path / "log", tmp_path)
    assert code != 0
    for rank in (0, 1):
        assert "hapi-runner: error: --resume: no run of lenet-synthetic" in worker_log(tmp_path / "log", rank)
    assert not os.path.exists(tmp_path / "empty" / "lenet-synthetic")

