#!/usr/bin/env python3
"""label-issues on Fashion-MNIST PNG folders with a known fraction of labels flipped: precision and recall of the flipped files.

    python bench/label_issues.py [--count 3000] [--flip 0.1] [--folds 3] [--epochs 6] [--optimizer adam] [--lr 0.002] [--threads 2] [--augment]

Writes ``--count`` training images (and a val/ folder of a fifth as many) as
``<split>/<class>/``, each flipped image filed under a class chosen at
random among the other nine; then runs the cross-fitting (LeNet,
``--image-size 28 --channels 1``, batches of 64, ``--optimizer`` at ``--lr``,
``--folds`` trainings of ``--epochs`` epochs, without augmentation unless
``--augment``: a random resized crop of a 28x28 image loses too much) and
confident learning with each of its rules on the same probabilities. Prints
a markdown table: suspects, precision and recall against the flipped files,
and how often the suggested label is the true one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.fashion_folders import NAMES, load_fashion, write_png  # noqa: E402


def build(folder: str, count: int, flip: float, seed: int = 0):
    """Writes the folders; returns ``{path: true class name}`` of the flipped files."""
    images, labels = load_fashion()
    rng = np.random.default_rng(seed)
    flipped = {}
    total = count + count // 5
    for k, i in enumerate(rng.permutation(len(images))[:total]):
        split = "train" if k < count else "val"
        label = int(labels[i])
        if rng.random() < flip:
            given = (label + 1 + int(rng.integers(9))) % 10
            flipped[write_png(folder, split, given, f"{i}.png", images[i])] = NAMES[label]
        else:
            write_png(folder, split, label, f"{i}.png", images[i])
    return flipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        os.environ["HAPI_RUNNER_CACHE"] = os.path.join(tmp, "cache")
        data = os.path.join(tmp, "data")
        flipped = build(data, args.count, args.flip)
        from hapi_runner import TrainConfig
        from hapi_runner.datacheck.confident import METHODS
        from hapi_runner.datacheck.crossfit import cross_fit
        from hapi_runner.datacheck.label_issues import suspect_rows

        config = TrainConfig(model="lenet", dataset="folder", data_dir=data, channels=1, image_size=28, epochs=args.epochs,
                             batch_size=64, optimizer=args.optimizer, lr=args.lr, augment=args.augment, threads=args.threads, verbose=0)
        started = time.perf_counter()
        fit = cross_fit(config, args.folds)
        seconds = time.perf_counter() - started
        print(f"\n{args.count} train + {args.count // 5} val images, {len(flipped)} flipped ({args.flip:.0%}); LeNet, {args.optimizer} at lr {args.lr}"
              f"{' with augmentation' if args.augment else ''}, {args.folds} folds x {args.epochs} epochs: {seconds:.0f}s, out-of-sample top-1 {fit.accuracy:.3f}\n")
        print("| rule | suspects | precision | recall | suggested = true class |\n| --- | ---: | ---: | ---: | ---: |")
        for method in METHODS:
            rows = suspect_rows(fit, method)
            hits = [r for r in rows if r["path"] in flipped]
            right = sum(flipped[r["path"]] == r["suggested_label"] for r in hits)
            print(f"| {method} | {len(rows)} | {len(hits) / max(1, len(rows)):.3f} | {len(hits) / len(flipped):.3f} | "
                  f"{right / max(1, len(hits)):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
