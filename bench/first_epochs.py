#!/usr/bin/env python3
"""What decides the first epochs: ResNet-18 from scratch on a small Fashion-MNIST folder, 3 epochs, with each change off/on.

    python bench/first_epochs.py [--seeds 0 1] [--rows NAME ...] [--parallel 1] [--threads 2] [--source DIR] [--keep DIR]

Writes a folder dataset from Debian's dataset-fashion-mnist (``--source``,
default /usr/share/datasets/fashion-mnist): the first 250 training images of
every class as ``train/<class>/*.png`` (2,500 grey PNGs) and the first 1,000
test images as ``val/<class>/*.png``. Then trains, in a fresh process per run,

    train.py --model resnet18 --dataset folder --data-dir D --channels 1 --normalize-stats data --image-size 32
             --eval-crop-pct 1.0 --no-augment --epochs 3 --batch-size 64 --lr 0.05 --lr-schedule cosine
             --threads 2 --no-report --no-export

for every seed and every row of the ablation: the defaults, and the defaults
with one change switched the other way (the row's flags). Prints a markdown
table of the validation top-1 after the third epoch, per seed, and the minutes
each run took.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "/usr/share/datasets/fashion-mnist"
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
PER_CLASS = 250
VAL_IMAGES = 1000
COMMAND = ["--model", "resnet18", "--dataset", "folder", "--channels", "1", "--normalize-stats", "data",
           "--image-size", "32", "--eval-crop-pct", "1.0", "--no-augment", "--epochs", "3", "--batch-size", "64",
           "--lr", "0.05", "--lr-schedule", "cosine"]
SPEED = ["--no-report", "--no-export"]
# (row name, flags added to the command). "defaults" is the command as it stands; "fan-out-init" and "exempt-norms"
# each add one setting that is off by default (timm's initialisation, measured neutral; the decay exemption, measured
# to cost); each other row switches one setting that is on back to what Paddle does on its own; "none" switches both
# (the command before them).
ROWS: Dict[str, List[str]] = {
    "defaults": [],
    "fan-out-init": ["--conv-init", "kaiming-fan-out"],
    "exempt-norms": ["--no-decay-norm-and-bias"],
    "bn-scales-1": ["--no-zero-init-residual"],
    "keep-last": ["--no-drop-last"],
    "none": ["--no-zero-init-residual", "--no-drop-last"],
}


def _idx(path: str):
    """The array of one gzipped IDX file (images: N x 28 x 28 uint8; labels: N)."""
    import numpy as np

    with gzip.open(path, "rb") as fh:
        data = fh.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_folder(source: str, folder: str) -> str:
    """``folder/train`` (250 per class) and ``folder/val`` (the first 1,000 test images) as grey PNGs."""
    import numpy as np
    from PIL import Image

    def save(split: str, images, labels) -> None:
        for index, (image, label) in enumerate(zip(images, labels)):
            path = os.path.join(folder, split, CLASSES[int(label)], f"{index:05d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(image, mode="L").save(path)

    images, labels = _idx(os.path.join(source, "train-images-idx3-ubyte.gz")), _idx(os.path.join(source, "train-labels-idx1-ubyte.gz"))
    keep = np.concatenate([np.flatnonzero(labels == k)[:PER_CLASS] for k in range(len(CLASSES))])
    save("train", images[keep], labels[keep])
    test_images, test_labels = _idx(os.path.join(source, "t10k-images-idx3-ubyte.gz")), _idx(os.path.join(source, "t10k-labels-idx1-ubyte.gz"))
    save("val", test_images[:VAL_IMAGES], test_labels[:VAL_IMAGES])
    return folder


def train_once(data: str, out: str, seed: int, flags: List[str], threads: int) -> Tuple[float, float, str]:
    """One run: (val top-1 after the last epoch, minutes, the command)."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), *COMMAND, "--data-dir", data, "--seed", str(seed),
           "--threads", str(threads), *SPEED, *flags, "--save-dir", out]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    minutes = (time.time() - start) / 60
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    with open(os.path.join(out, "results.json")) as fh:
        top1 = float(json.load(fh)["final_eval"]["acc_top1"])
    shown = " ".join(["train.py", *COMMAND[:6], "--data-dir D", *COMMAND[6:], *flags, "--seed", str(seed)])
    return top1, minutes, shown


def table(results: Dict[str, Dict[int, Tuple[float, float, str]]], seeds: List[int]) -> str:
    """The markdown table: one row per ablation row, top-1 per seed, the change against the defaults."""
    head = ["run", "flags"] + [f"top-1 seed {s}" for s in seeds] + ["mean", "vs defaults", "minutes per run"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    base = results.get("defaults")
    base_mean = sum(base[s][0] for s in seeds) / len(seeds) if base else None
    for name, per_seed in results.items():
        mean = sum(per_seed[s][0] for s in seeds) / len(seeds)
        delta = f"{(mean - base_mean) * 100:+.1f}" if base_mean is not None and name != "defaults" else "-"
        minutes = sum(per_seed[s][1] for s in seeds) / len(seeds)
        cells = [name, f"`{' '.join(ROWS[name])}`" if ROWS[name] else "(none)"] + [f"{per_seed[s][0] * 100:.1f}" for s in seeds]
        lines.append("| " + " | ".join(cells + [f"{mean * 100:.1f}", delta, f"{minutes:.1f}"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS), help="ablation rows to run")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time")
    parser.add_argument("--threads", type=int, default=2, help="--threads of each run")
    parser.add_argument("--source", default=SOURCE, help="the folder of the gzipped Fashion-MNIST IDX files")
    parser.add_argument("--keep", help="write the data and runs here and keep them (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or tmp
        data = os.path.join(work, "fashion-folder")
        if not os.path.isdir(os.path.join(data, "val")):
            print(f"writing {PER_CLASS * len(CLASSES)} training and {VAL_IMAGES} validation PNGs to {data}", flush=True)
            write_folder(args.source, data)
        jobs = [(name, seed) for name in args.rows for seed in args.seeds]

        def one(job):
            name, seed = job
            out = os.path.join(work, "runs", f"{name}-seed{seed}-{int(time.time() * 1000)}")
            result = train_once(data, out, seed, ROWS[name], args.threads)
            print(f"{name} seed {seed}: top-1 {result[0] * 100:.1f} in {result[1]:.1f} min   {result[2]}", flush=True)
            return job, result

        results: Dict[str, Dict[int, Tuple[float, float, str]]] = {name: {} for name in args.rows}
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for (name, seed), result in pool.map(one, jobs):
                results[name][seed] = result
    print()
    print(table(results, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
