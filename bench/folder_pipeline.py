#!/usr/bin/env python3
"""Image folders: paddle.vision's DatasetFolder pipeline against hapi_runner's folder datasets, 1600x1200 JPEGs to 224.

    python bench/folder_pipeline.py [--count 200] [--epochs 3] [--cores 1] [--workers 0] [--write-docs]

Writes ``--count`` synthetic photographs (smooth gradients, blurred noise,
shapes and grain; 1600x1200, JPEG quality 90) as ``train/<class>/`` under a
temporary folder, then measures training images/s, each pipeline in a fresh
process pinned to ``--cores`` cores with one math thread:

- paddle: ``paddle.vision.datasets.DatasetFolder`` with ``RandomResizedCrop(224)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` in a ``paddle.io.DataLoader``
  (``--workers`` workers); every epoch decodes every file.
- hapi_runner, cold: an empty image cache; the epoch's time includes scanning,
  decoding into the cache (and a 4-image ``val/``) (``--workers`` processes) and the epoch from it.
- hapi_runner, warm: later epochs of the same run, from the memory-mapped cache.

``--write-docs`` puts the table into the "Image folders" section of docs/benchmarks.md (one marked
part per ``--cores``/``--workers`` setting).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASSES = 4


def write_photos(folder: str, count: int, seed: int = 0, split: str = "train") -> None:
    """``count`` 1600x1200 JPEGs of photo-like content under ``folder/split/class_K/``."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:1200, 0:1600].astype(np.float32)
    for i in range(count):
        a, b, c = rng.uniform(-1, 1, 3)
        base = np.stack([(a * xs / 1600 + b * ys / 1200 + c + k) * 80 + 100 for k in range(3)], axis=-1)
        blobs = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((1600, 1200), Image.BICUBIC)
        pixels = 0.6 * base + 0.4 * np.asarray(blobs, dtype=np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, 1400), rng.integers(0, 1000)
            box = [int(x0), int(y0), int(x0 + rng.integers(50, 400)), int(y0 + rng.integers(50, 400))]
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(1.5))
        grain = rng.normal(0, 6, (1200, 1600, 1)).astype(np.float32)
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8))
        path = os.path.join(folder, split, f"class_{i % CLASSES}", f"photo_{i:05d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image.save(path, "JPEG", quality=90)


def _epoch(loader) -> int:
    seen = 0
    for images, _ in loader:
        assert tuple(images.shape[1:]) == (3, 224, 224)
        seen += int(images.shape[0])
    return seen


def run_paddle(data: str, epochs: int, workers: int, batch_size: int):
    import paddle
    from paddle.vision import transforms as T
    from paddle.vision.datasets import DatasetFolder

    transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    dataset = DatasetFolder(os.path.join(data, "train"), transform=transform)
    loader = paddle.io.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    rates = []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        seen = _epoch(loader)
        rates.append((seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)))
    return rates


def run_hapi(data: str, epochs: int, workers: int, batch_size: int, cache: str):
    os.environ["HAPI_RUNNER_CACHE"] = cache
    from hapi_runner.datasets import load_folder_splits, make_loader

    start, cpu = time.perf_counter(), time.process_time()
    splits = load_folder_splits(data, image_size=224, num_workers=workers)
    loader = make_loader(splits.train, batch_size, shuffle=True, num_workers=workers)
    rates = []
    for epoch in range(epochs):
        splits.train.transform.set_epoch(epoch)
        seen = _epoch(loader)
        # The first epoch's time includes loading: the scan and the decode into the cache (val/ too).
        rates.append((seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)))
        start, cpu = time.perf_counter(), time.process_time()
    return rates


def worker_main(args) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))
    if args.worker == "paddle":
        rates = run_paddle(args.data, args.epochs, args.workers, args.batch_size)
    else:
        rates = run_hapi(args.data, args.epochs, args.workers, args.batch_size, args.cache)
    print(json.dumps({"rates": rates}))


def measure(args, which: str, cache: str):
    command = [sys.executable, os.path.abspath(__file__), "--worker", which, "--data", args.data, "--cache", cache,
               "--epochs", str(args.epochs), "--workers", str(args.workers), "--cores", str(args.cores),
               "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"{which} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rates"]


def _median(values):
    return sorted(values)[len(values) // 2]


def report(args, paddle_rates, hapi_rates) -> str:
    """The table: images/s per wall second and per CPU second of the process (the machine may be shared)."""
    # Worker processes' CPU time is not the measuring process's: with workers, wall time is the only fair basis.
    basis = "CPU" if args.workers == 0 else "wall"
    pick = 1 if args.workers == 0 else 0
    rows = [
        f"| pipeline | images/s (wall) | images/s (CPU) | against paddle ({basis}) | target | epochs: wall / CPU images/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    def fmt(rates):
        return ", ".join(f"{w:.1f} / {c:.1f}" if pick else f"{w:.1f} / -" for w, c in rates)

    base = _median([r[pick] for r in paddle_rates])
    lines = [("paddle.vision DatasetFolder + RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize", paddle_rates, None),
             ("hapi_runner, first epoch (cold cache: scan, decode into the cache, epoch)", hapi_rates[:1], 1.5),
             ("hapi_runner, later epochs (warm cache)", hapi_rates[1:], 5.0)]
    for name, rates, target in lines:
        wall, cpu = _median([w for w, _ in rates]), _median([c for _, c in rates])
        ours = (wall, cpu)[pick]
        goal = "" if target is None else f">= {target:g}x: {'met' if ours >= target * base else 'not met'}"
        cpu_text = f"{cpu:.1f}" if pick else "-"
        rows.append(f"| {name} | {wall:.1f} | {cpu_text} | {ours / base:.2f}x | {goal} | {fmt(rates)} |")
    command = (f"python bench/folder_pipeline.py --count {args.count} --epochs {args.epochs} --cores {args.cores} "
               f"--workers {args.workers}")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores on the machine"
    return "\n".join(rows) + (
        f"\n\n{args.count} JPEGs of 1600x1200 (quality 90), batch {args.batch_size}, {args.cores} core(s), "
        f"{args.workers} loader workers, one math thread; {machine}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Ratios use {basis} seconds" + (" of the measuring process, which other load on a shared machine does not "
        "inflate" if pick else " (the measuring process's CPU seconds would leave out its workers')") + f". Command: `{command}`.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--worker", choices=("paddle", "hapi"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    with tempfile.TemporaryDirectory(prefix="folder-bench-") as tmp:
        args.data = os.path.join(tmp, "data")
        write_photos(args.data, args.count)
        write_photos(args.data, CLASSES, seed=1, split="val")
        hapi_rates = measure(args, "hapi", os.path.join(tmp, "cache"))
        paddle_rates = measure(args, "paddle", os.path.join(tmp, "cache"))
    body = report(args, paddle_rates, hapi_rates)
    print(body)
    if args.write_docs:
        from bench.report import update_section

        # One marked section per setting: the one-core table and, e.g., folders-2cores-2workers.
        section = "folders" if (args.cores, args.workers) == (1, 0) else f"folders-{args.cores}cores-{args.workers}workers"
        update_section(os.path.join(ROOT, "docs", "benchmarks.md"), section, body)


if __name__ == "__main__":
    main()
