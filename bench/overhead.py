#!/usr/bin/env python3
"""Wrapper overhead: one epoch of LeNet on real Fashion-MNIST, train.py against plain paddle.Model.fit.

Both sides use seed 002's optimiser (Momentum 0.01/0.9, L2Decay 1e-4, batch 64),
the same 60,000 training images, one CPU thread (Paddle's default and
``--threads auto`` for LeNet) and no evaluation. The plain side is what a user
writes from the seeds: ``paddle.vision.datasets.FashionMNIST`` with
``ToTensor`` and ``Normalize``, then ``Model.fit``. Each run is a fresh process;
the figure is the median training time of ``--repeats`` runs.

    python bench/overhead.py [--data-dir /usr/share/datasets/fashion-mnist] [--repeats 3] [--write-docs]

Needs the real files (Debian: apt-get install dataset-fashion-mnist).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.report import update_section  # noqa: E402

PLAIN = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import paddle
import paddle.vision.transforms as T
from paddle.vision.datasets import FashionMNIST
d = sys.argv[1]
paddle.seed(0)
tf = T.Compose([T.ToTensor(), T.Normalize([0.2860], [0.3530])])
train = FashionMNIST(image_path=d + "/train-images-idx3-ubyte.gz", label_path=d + "/train-labels-idx1-ubyte.gz", mode="train", transform=tf, download=False)
net = paddle.vision.models.LeNet(num_classes=10)
model = paddle.Model(net, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"), paddle.static.InputSpec([None, 1], "int64", "label"))
opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=net.parameters(), weight_decay=paddle.regularizer.L2Decay(1e-4))
model.prepare(opt, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy(topk=(1, 5)))
class Timer(paddle.callbacks.Callback):  # the same span hapi_runner's History times
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start
timer = Timer()
model.fit(train, batch_size=64, epochs=1, verbose=0, num_workers=0, callbacks=[timer])
print(json.dumps({"train_seconds": timer.seconds}))
"""


# Turn off what the plain side does not do either (the export after training).
EXTRA_FLAGS = []


def run_plain(data_dir):
    out = subprocess.run([sys.executable, "-c", PLAIN, data_dir], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["train_seconds"]


def run_ours(data_dir):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "train.py", "--model", "lenet", "--dataset", "fashion-mnist", "--data-dir", data_dir,
               "--no-download", "--epochs", "1", "--verbose", "0", "--save-dir", tmp + "/run", *EXTRA_FLAGS]
        subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        with open(tmp + "/run/results.json") as fh:
            return json.load(fh)["train_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/benchmarks.md")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.data_dir, "train-images-idx3-ubyte.gz")):
        sys.exit(f"bench: Fashion-MNIST files not found in {args.data_dir}; apt-get install dataset-fashion-mnist or pass --data-dir")
    plain, ours = [], []
    for _ in range(args.repeats):  # interleaved, so drift in the machine hits both sides alike
        plain.append(run_plain(args.data_dir))
        ours.append(run_ours(args.data_dir))
    p, o = statistics.median(plain), statistics.median(ours)
    ratio = o / p
    lines = [
        "| | train seconds (median) | runs |",
        "| --- | --- | --- |",
        f"| plain `paddle.Model.fit` (FashionMNIST + ToTensor + Normalize) | {p:.2f} | {', '.join(f'{x:.2f}' for x in plain)} |",
        f"| `train.py` (hapi_runner) | {o:.2f} | {', '.join(f'{x:.2f}' for x in ours)} |",
        "",
        f"train.py / plain = **{ratio:.3f}** ({(ratio - 1) * 100:+.1f}%; goal: at most +3%).",
    ]
    import paddle  # noqa: E402  (version only, after the timed runs)

    meta = (f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"Paddle {paddle.__version__}; {time.strftime('%Y-%m-%d')}. Command: `python bench/overhead.py --repeats {args.repeats} --write-docs`.")
    text = "\n".join([meta, "", *lines])
    print(text)
    if args.write_docs:
        update_section(os.path.join(ROOT, "docs", "benchmarks.md"), "overhead", text)


if __name__ == "__main__":
    main()
