#!/usr/bin/env python3
"""check-data on 10,000 Fashion-MNIST PNGs with planted duplicates: time (cold and warm cache) and what was found.

    python bench/data_check.py [--count 10000] [--plants 50]

Writes ``--count`` images as ``train/<class>/`` (80%) and ``val/<class>/``
(20%), of which ``4 * --plants`` are planted copies: exact copies inside a
class, exact copies of training images in val/, resized (2x) and
JPEG-recompressed (quality 85) copies of training images in val/, and exact
copies filed under another class. Then runs ``check_data`` twice (``--image-size
28 --channels 1``): with an empty image cache, and again reusing it. Prints a
markdown table: seconds, and how many planted pairs of each kind were found.
Pairs found beyond the planted ones are listed too: Fashion-MNIST itself holds
some repeated images.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.fashion_folders import NAMES, load_fashion, write_png  # noqa: E402


def build(folder: str, count: int, plants: int, seed: int = 0):
    """Writes the folders; returns ``{kind: set of frozenset(path pair)}`` of the planted pairs."""
    images, labels = load_fashion()
    rng = np.random.default_rng(seed)
    originals = count - 4 * plants
    order = rng.permutation(len(images))[:originals]
    n_train = int(originals * 0.8)
    train_paths = []
    for k, i in enumerate(order):
        split = "train" if k < n_train else "val"
        path = write_png(folder, split, int(labels[i]), f"{i}.png", images[i])
        if split == "train":
            train_paths.append((path, int(labels[i]), i))
    picks = rng.choice(len(train_paths), 4 * plants, replace=False).reshape(4, plants)
    planted = {"within_class exact": set(), "across_splits exact": set(), "across_splits near": set(), "across_classes exact": set()}
    for kind, row in zip(planted, picks):
        for j in row:
            source, label, i = train_paths[j]
            if kind == "across_splits near":
                big = Image.fromarray(images[i], "L").resize((56, 56), Image.BICUBIC)
                target = os.path.join(folder, "val", NAMES[label], f"{i}_copy.jpg")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                big.save(target, "JPEG", quality=85)
            else:
                split = "val" if kind.startswith("across_splits") else "train"
                other = (label + 1 + int(rng.integers(9))) % 10 if kind.startswith("across_classes") else label
                target = write_png(folder, split, other, f"{i}_copy.png", images[i])
            planted[kind].add(frozenset((source, target)))
    return planted


def run_once(folder: str) -> dict:
    from hapi_runner.datacheck.check import CheckOptions, check_data

    started, cpu = time.perf_counter(), time.process_time()
    summary = check_data(folder, CheckOptions(image_size=28, channels=1), output=os.path.join(folder, "data_check.html"))
    summary["wall"], summary["cpu"] = time.perf_counter() - started, time.process_time() - cpu
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--plants", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-datacheck-") as tmp:
        os.environ["HAPI_RUNNER_CACHE"] = os.path.join(tmp, "cache")
        data = os.path.join(tmp, "data")
        print(f"writing {args.count} images ...", flush=True)
        planted = build(data, args.count, args.plants)
        import hapi_runner.datacheck.check  # noqa: F401  (Paddle's import is not the check's time)

        cold, warm = run_once(data), run_once(data)
        found = {}
        for p in cold["duplicate_pairs"]:
            found.setdefault(f"{p['kind']} {p['how']}", set()).add(frozenset((p["first"], p["second"])))
        print(f"\n{cold['images']} images ({cold['class_counts']['train'] and sum(cold['class_counts']['train'].values())} train), "
              f"--image-size 28 --channels 1\n")
        print("| run | wall seconds | CPU seconds (this process) |\n| --- | ---: | ---: |")
        print(f"| empty image cache (decodes every file) | {cold['wall']:.1f} | {cold['cpu']:.1f} |\n"
              f"| cache reused | {warm['wall']:.1f} | {warm['cpu']:.1f} |\n")
        print("| planted pairs | planted | found | other pairs of that kind found |\n| --- | ---: | ---: | ---: |")
        for kind, pairs in planted.items():
            got = found.get(kind, set())
            print(f"| {kind} | {len(pairs)} | {len(pairs & got)} | {len(got - pairs)} |")
        rest = {k: len(v) for k, v in found.items() if k not in planted}
        print(f"\nother kinds found: {rest or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
