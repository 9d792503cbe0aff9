#!/usr/bin/env python3
"""The LR finder's suggestion against the default rate (0.01): does training at it end at least as well?

Three model/dataset pairs, each trained twice from the same seed for the same
epochs: once at ``--lr 0.01`` (the default) and once at ``--lr auto`` (the
range test first, then its valley). The pairs: LeNet on the embedded
Fashion-MNIST subset (6,000 images, Momentum); a small network of the
user's own (``bench/lr_find_net.py``, Adam, for which 0.01 is a high rate)
and MobileNetV3-small (Momentum) on a folder of PNGs written from that
subset (``--folder-images``, 4:1 train/validation). Sized for a shared
2-core machine: about 12 minutes there.

    python bench/lr_find.py [--epochs 3] [--folder-images 1500] [--write-docs]

Prints a markdown table; ``--write-docs`` also puts it into docs/benchmarks.md.
"""

import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.report import update_section  # noqa: E402

PAIRS = [
    ("LeNet, fashion-mnist-mini, Momentum", dict(model="lenet", dataset="fashion-mnist-mini")),
    ("SmallCNN (user file), PNG folder, Adam", dict(model=os.path.join(ROOT, "bench", "lr_find_net.py") + ":SmallCNN",
                                                   dataset="folder", optimizer="adam", channels=1, image_size=28,
                                                   eval_crop_pct=1.0)),
    ("MobileNetV3-small, PNG folder, Momentum", dict(model="mobilenet_v3_small", dataset="folder", channels=1,
                                                    image_size=28, eval_crop_pct=1.0)),
]


def write_folder(root: str, count: int) -> str:
    """``count`` images of the embedded Fashion-MNIST subset as PNGs in root/train/<class>/ and root/val/<class>/ (4:1)."""
    import numpy as np
    from PIL import Image

    from hapi_runner.datasets import load_dataset

    data = load_dataset("fashion-mnist-mini", "train", augment=False)
    for i in range(count):
        split = "val" if i % 5 == 4 else "train"
        folder = os.path.join(root, split, f"class_{int(data.labels[i]):02d}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.asarray(data.images[i]).reshape(28, 28).astype("uint8")).save(os.path.join(folder, f"{i:05d}.png"))
    return root


def train(values: dict, epochs: int, lr, out: str) -> dict:
    from hapi_runner import Runner, TrainConfig

    started = time.perf_counter()
    runner = Runner(TrainConfig(**values, epochs=epochs, lr=lr, seed=0, verbose=0, export=False, report=False,
                                visualdl=False, output_root=out))
    results = runner.fit()
    finding = runner.lr_finding
    return {"lr": runner.config.lr, "top1": results["final_eval"]["acc_top1"], "loss": results["final_eval"]["loss"],
            "seconds": time.perf_counter() - started, "sweep": finding.seconds if finding else None,
            "steepest": finding.steepest if finding else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--folder-images", type=int, default=1500)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HAPI_RUNNER_CACHE"] = os.path.join(tmp, "cache")  # the folder's decoded images go with it
        folder = write_folder(os.path.join(tmp, "images"), args.folder_images)
        for name, values in PAIRS:
            if values["dataset"] == "folder":
                values = {**values, "data_dir": folder}
            default = train(values, args.epochs, 0.01, os.path.join(tmp, "out"))
            auto = train(values, args.epochs, "auto", os.path.join(tmp, "out"))
            verdict = "yes" if auto["top1"] >= default["top1"] else f"no ({auto['top1'] - default['top1']:+.4f})"
            rows.append(f"| {name} | {default['top1']:.4f} / {default['loss']:.4f} | {auto['lr']:.3g} (steepest "
                        f"{auto['steepest']:.3g}) | {auto['top1']:.4f} / {auto['loss']:.4f} | {verdict} | "
                        f"{default['seconds']:.0f} / {auto['seconds']:.0f} (sweep {auto['sweep']:.0f}) |")
            print(rows[-1], flush=True)
    header = ("| model, data, optimizer | lr 0.01: top-1 / loss | --lr auto: the rate chosen | --lr auto: top-1 / loss | "
              "auto at least as good? | seconds: 0.01 / auto |\n| --- | --- | --- | --- | --- | --- |")
    note = (f"\n\n{args.epochs} epochs each, seed 0, batch 64, constant rate; the folder: {args.folder_images} images of the "
            f"embedded subset as PNGs (4:1 train/val), random resized crops and flips in training. {platform.machine()}, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Command: `python bench/lr_find.py --epochs "
            f"{args.epochs} --folder-images {args.folder_images}`.")
    table = header + "\n" + "\n".join(rows) + note
    print(table)
    if args.write_docs:
        update_section(os.path.join(ROOT, "docs", "benchmarks.md"), "lr-find", table)


if __name__ == "__main__":
    main()
