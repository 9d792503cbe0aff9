#!/usr/bin/env python3
"""How long the guide's "your own images" example takes, and what finishes in about a minute instead.

    python bench/folder_example.py [--per-class 40] [--epochs 2]

Writes ``--per-class`` images per class (3 classes, 160x120 JPEGs of smooth
colour fields and a shape) as ``train/<class>/`` under a temporary folder, then runs each command below as a user would
(``python train.py ...``, a fresh process, ``--threads auto``) and reads its
``results.json``: training images/s, the time of the training passes and of
the whole command (wall and CPU seconds: on a shared machine the CPU time is
what the command itself cost). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMANDS = [
    ("the guide's example: ResNet-18 at 64 px", ["--model", "resnet18", "--image-size", "64"]),
    ("ResNet-18 at 32 px", ["--model", "resnet18", "--image-size", "32"]),
    ("LeNet at 32 px", ["--model", "lenet", "--image-size", "32"]),
]


def write_images(folder: str, per_class: int) -> None:
    """3 classes of ``per_class`` JPEGs, 160x120: smooth colour fields and shapes, a class-dependent tint."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for c, name in enumerate(("bag", "coat", "dress")):
        os.makedirs(os.path.join(folder, "train", name), exist_ok=True)
        for k in range(per_class):
            base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            base[..., c] = 200  # the class is visible, so the runs learn something
            image = Image.fromarray(base).resize((160, 120), Image.BICUBIC)
            draw = ImageDraw.Draw(image)
            x, y = rng.integers(0, 120), rng.integers(0, 80)
            draw.ellipse([x, y, x + 30, y + 30], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            image.save(os.path.join(folder, "train", name, f"img{k}.jpg"), "JPEG", quality=90)


def measure(data: str, run: str, flags, epochs: int) -> dict:
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--dataset", "folder", "--data-dir", data, *flags,
               "--epochs", str(epochs), "--verbose", "0", "--no-visualdl", "--save-dir", run]
    started, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    with open(os.path.join(run, "results.json"), encoding="utf-8") as fh:
        results = json.load(fh)
    return {"images_per_second": results["images_per_second"], "epoch_seconds": results["train_seconds"] / epochs,
            "wall": wall, "cpu": cpu, "top1": results["final_eval"]["acc_top1"], "threads": results["threads"]}


def _children_cpu() -> float:
    """CPU seconds of the finished child processes: on a shared machine, what the command itself cost."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2, help="epochs measured; the table extrapolates to the guide's 10")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {3 * args.per_class} images "
          f"(3 classes, 10% held out for validation), {args.epochs} epochs\n")
    print("| command | threads | training images/s | s per epoch | 10 epochs, min | whole command: wall s / CPU s | flags |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "photos")
        write_images(data, args.per_class)
        for number, (label, flags) in enumerate(COMMANDS):
            m = measure(data, os.path.join(tmp, f"run{number}"), flags, args.epochs)
            print(f"| {label} | {m['threads']} | {m['images_per_second']:.1f} | {m['epoch_seconds']:.1f} | "
                  f"{m['epoch_seconds'] * 10 / 60:.1f} | {m['wall']:.0f} / {m['cpu']:.0f} | `{' '.join(flags)}` |", flush=True)


if __name__ == "__main__":
    main()
