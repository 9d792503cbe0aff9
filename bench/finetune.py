#!/usr/bin/env python3
"""Fine-tuning on the CPU: a frozen backbone run every epoch (today's path) against cached features.

    python bench/finetune.py [--only speed equivalence] [--images 512] [--epochs 10] [--today-epochs N]
                             [--model resnet50] [--size 224] [--data-dir /usr/share/datasets/fashion-mnist]

Sections (``--only`` takes these names):

    speed        ``train.py --freeze-backbone`` on a folder of ``--images`` JPEGs (256x256, two classes of the real
                 Fashion-MNIST, upscaled to RGB; an eighth as many in val/), ``--model`` at ``--size`` px for
                 ``--epochs`` epochs, with ``--no-feature-cache`` (every epoch runs the backbone in dygraph) and
                 without (the backbone runs once through paddle.inference, the head trains on cached features).
                 Per epoch (the training pass, metrics.csv's seconds) and the whole command, wall and CPU
                 seconds; the cached run includes the feature pass (an empty feature cache). On a slow machine
                 ``--today-epochs N`` runs today's path for N epochs only and adds (epochs - N) of its mean
                 training pass to its whole command: a lower bound, since the added epochs' evaluations are left out.
    equivalence  ResNet-18 at 64 px on 128 of the JPEGs, ``--no-augment``, seed 0, 3 epochs, both paths: the
                 accuracy each epoch prints, which must be equal.
    transfer     a real transfer task: ResNet-18 (32 px, grey) trained here on ``--pretrain-images`` Fashion-MNIST
                 images of classes 0-4, then trained on 50 images per class of classes 5-9 from scratch, as a cached
                 head (``--freeze-backbone``) and in two phases (``--fine-tune``); test top-1 on 200 test images per
                 class and the minutes of each command. The same three on scikit-learn's real handwritten digits
                 (``--targets digits``; needs scikit-learn: ``pip install -e '.[bench]'``), 50 per class, the other
                 1,297 scans for evaluation.

Both commands pass ``--no-export --no-report`` (the same cost for either path). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = {0: "t-shirt", 1: "trouser"}


def fashion_images(data_dir: str, split: str = "train"):
    """``(uint8 [N, 28, 28], labels [N])`` of the real Fashion-MNIST files in ``data_dir``."""
    from hapi_runner.datasets import load_dataset

    data = load_dataset("fashion-mnist", split, data_dir=data_dir, download=False, augment=False)
    return data.images[:, 0], data.labels


def write_jpegs(folder: str, data_dir: str, count: int, size: int = 256) -> None:
    """``count`` training JPEGs (and ``count // 8`` in val/) of two Fashion-MNIST classes, ``size`` px RGB."""
    import numpy as np
    from PIL import Image

    images, labels = fashion_images(data_dir)
    for split, wanted, offset in (("train", count, 0), ("val", max(2, count // 8), count // 2)):
        for label, name in CLASSES.items():
            os.makedirs(os.path.join(folder, split, name), exist_ok=True)
            picks = np.flatnonzero(labels == label)[offset:offset + wanted // 2]
            for i in picks:
                grey = Image.fromarray(images[i]).resize((size, size), Image.BICUBIC)
                grey.convert("RGB").save(os.path.join(folder, split, name, f"{i}.jpg"), quality=90)


def run_train(args_list, env) -> dict:
    """Runs ``train.py`` with ``args_list``; ``{"wall": s, "cpu": s, "rows": metrics.csv rows}``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args_list], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"train.py {' '.join(args_list)} failed:\n{done.stdout[-3000:]}")
    run = args_list[args_list.index("--save-dir") + 1]
    with open(os.path.join(run, "metrics.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rows": rows, "log": done.stdout}


def _env(cache: str) -> dict:
    env = dict(os.environ, HAPI_RUNNER_CACHE=cache, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def speed(args, work: str) -> None:
    folder = os.path.join(work, "jpegs")
    write_jpegs(folder, args.data_dir, args.images)
    cache = os.path.join(work, "cache")
    env = _env(cache)
    common = ["--model", args.model, "--dataset", "folder", "--data-dir", folder, "--image-size", str(args.size),
              "--freeze-backbone", "--batch-size", "32", "--no-export", "--no-report", "--no-visualdl", "--keep-last",
              "1", "--verbose", "2", "--threads", str(args.threads)]
    # Decode the images into the image cache first, so neither command pays for it.
    _warm_cache(folder, args.size, cache)
    today_epochs = args.today_epochs or args.epochs
    today = run_train([*common, "--no-feature-cache", "--epochs", str(today_epochs), "--save-dir", os.path.join(work, "today")], env)
    cached = run_train([*common, "--epochs", str(args.epochs), "--save-dir", os.path.join(work, "cached")], env)
    print(f"\n{args.images} JPEGs (+{max(2, args.images // 8)} val), {args.model} at {args.size} px, batch 32, "
          f"{args.epochs} epochs, --freeze-backbone\n")
    print("| path | epoch (training pass), s | whole command, wall s | whole command, CPU s | eval top-1 after the last epoch |")
    print("| --- | --- | --- | --- | --- |")
    table = {}
    for name, result, epochs in (("today (--no-feature-cache)", today, today_epochs), ("cached features", cached, args.epochs)):
        per_epoch = sum(float(r["seconds"]) for r in result["rows"]) / len(result["rows"])
        wall, cpu = result["wall"], result["cpu"]
        note = ""
        if epochs < args.epochs:  # a lower bound of the whole command: the missing epochs' training passes alone
            share = cpu / wall if wall else 1.0
            wall += (args.epochs - epochs) * per_epoch
            cpu += (args.epochs - epochs) * per_epoch * share
            note = f" (measured {epochs} epoch{'s' if epochs > 1 else ''}: {result['wall']:.0f} s; + {args.epochs - epochs} x the mean epoch)"
        table[name] = (per_epoch, wall, cpu)
        print(f"| {name} | {per_epoch:.2f} | {wall:.0f}{note} | {cpu:.0f} | {result['rows'][-1]['eval_acc_top1']} |")
    (e0, w0, c0), (e1, w1, c1) = table.values()
    print(f"\nCached against today: {e0 / e1:.0f}x per epoch (target 20x), {w0 / w1:.1f}x whole command in wall "
          f"seconds, {c0 / c1:.1f}x in CPU seconds (target 5x).")
    for line in cached["log"].splitlines():
        if "features" in line and line.startswith("hapi_runner"):
            print(f"    {line}")


def _warm_cache(folder: str, size: int, cache: str) -> None:
    from hapi_runner.datasets.folder import load_folder_splits

    os.environ["HAPI_RUNNER_CACHE"] = cache
    load_folder_splits(folder, image_size=size, channels=3)


def equivalence(args, work: str) -> None:
    folder = os.path.join(work, "small")
    write_jpegs(folder, args.data_dir, 128, size=72)
    env = _env(os.path.join(work, "cache-small"))
    common = ["--model", "resnet18", "--dataset", "folder", "--data-dir", folder, "--image-size", "64", "--freeze-backbone",
              "--no-augment", "--epochs", "3", "--batch-size", "16", "--lr", "0.001", "--seed", "0", "--no-export", "--no-report",
              "--no-visualdl", "--verbose", "2", "--threads", "auto"]
    today = run_train([*common, "--no-feature-cache", "--save-dir", os.path.join(work, "eq-today")], env)
    cached = run_train([*common, "--save-dir", os.path.join(work, "eq-cached")], env)
    print("\nResNet-18 at 64 px, 128 JPEGs (+16 val), --freeze-backbone --no-augment --lr 0.001, seed 0, 3 epochs\n")
    print("| epoch | train loss, today | train loss, cached | eval top-1, today | eval top-1, cached | equal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for a, b in zip(today["rows"], cached["rows"]):
        print(f"| {a['epoch']} | {float(a['train_loss']):.6f} | {float(b['train_loss']):.6f} | {a['eval_acc_top1']} | "
              f"{b['eval_acc_top1']} | {'yes' if a['eval_acc_top1'] == b['eval_acc_top1'] else 'NO'} |")


def write_pngs(folder: str, images, labels, classes, per_class: int, split: str, offset: int = 0) -> None:
    """``per_class`` 28x28 grey PNGs of each of ``classes`` under ``folder/split/<class>/``."""
    import numpy as np
    from PIL import Image

    for label in classes:
        os.makedirs(os.path.join(folder, split, f"class_{label}"), exist_ok=True)
        for i in np.flatnonzero(labels == label)[offset:offset + per_class]:
            Image.fromarray(images[i]).save(os.path.join(folder, split, f"class_{label}", f"{i}.png"))


def _results(run: str) -> dict:
    import json

    with open(os.path.join(run, "results.json"), encoding="utf-8") as fh:
        return json.load(fh)


def write_digits(folder: str, per_class: int) -> None:
    """scikit-learn's handwritten digits (1,797 real 8x8 scans, bundled with it) as 28x28 grey PNGs:
    ``per_class`` of each digit in train/, the rest in val/."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    for label in range(10):
        for j, i in enumerate(np.flatnonzero(digits.target == label)):
            split = "train" if j < per_class else "val"
            os.makedirs(os.path.join(folder, split, f"digit_{label}"), exist_ok=True)
            Image.fromarray(pixels[i]).resize((28, 28), Image.BICUBIC).save(
                os.path.join(folder, split, f"digit_{label}", f"{i}.png"))


def transfer(args, work: str) -> None:
    """ResNet-18 pretrained here on Fashion-MNIST classes 0-4, fine-tuned on 50 images per class of classes 5-9
    and of scikit-learn's digits."""
    images, labels = fashion_images(args.data_dir)
    test_images, test_labels = fashion_images(args.data_dir, "test")
    source = os.path.join(work, "source")
    write_pngs(source, images, labels, range(5), args.pretrain_images // 5, "train")
    write_pngs(source, test_images, test_labels, range(5), 100, "val")
    targets = {"Fashion-MNIST classes 5-9 (200 test images per class)": os.path.join(work, "target")}
    write_pngs(targets[next(iter(targets))], images, labels, range(5, 10), 50, "train")
    write_pngs(targets[next(iter(targets))], test_images, test_labels, range(5, 10), 200, "val")
    if "digits" in args.targets:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            sys.exit("bench/finetune.py: the digits target needs scikit-learn: pip install scikit-learn "
                     "(or pip install -e '.[bench]'); or pass --targets fashion")
        write_digits(os.path.join(work, "digits"), 50)
        targets["scikit-learn's digits, 10 classes (the other 1,297 scans)"] = os.path.join(work, "digits")
    if "fashion" not in args.targets:
        targets.pop(next(iter(targets)))
    env = _env(os.path.join(work, "cache-transfer"))
    common = ["--model", "resnet18", "--dataset", "folder", "--channels", "1", "--image-size", "32", "--batch-size", "32",
              "--no-export", "--no-report", "--no-visualdl", "--verbose", "2", "--threads", str(args.threads), "--seed", "0"]
    started = time.time()
    pre = run_train([*common, "--data-dir", source, "--epochs", str(args.pretrain_epochs), "--lr", "0.05",
                     "--lr-schedule", "cosine", "--save-dir", os.path.join(work, "pre")], env)
    weights = os.path.join(work, "pre", "checkpoints", "last", "model.pdparams")
    epochs = str(args.transfer_epochs)
    half = args.transfer_epochs // 2
    lr = [] if args.transfer_lr is None else ["--lr", args.transfer_lr]
    runs = {
        "from scratch (all layers, random init)": [*common, "--epochs", epochs, "--lr-schedule", "cosine", *lr],
        "cached head (--freeze-backbone)": [*common, "--epochs", epochs, "--pretrained", weights, "--freeze-backbone",
                                            "--lr-schedule", "cosine", *lr],
        f"two-phase (--fine-tune {half},{args.transfer_epochs - half} --backbone-lr-mult 0.1)": [
            *common, "--fine-tune", f"{half},{args.transfer_epochs - half}", "--pretrained", weights,
            "--backbone-lr-mult", "0.1", "--lr-schedule", "cosine", *lr],
    }
    print(f"\nSource: ResNet-18 (32 px, grey) trained here on Fashion-MNIST classes 0-4 ({args.pretrain_images} images, "
          f"{args.pretrain_epochs} epochs, --lr 0.05 cosine, {pre['wall'] / 60:.1f} min, val top-1 "
          f"{_results(os.path.join(work, 'pre'))['final_eval']['acc_top1']:.3f} on 500 test images). Each target: 50 "
          f"training images per class, {args.transfer_epochs} epochs, cosine, "
          f"{'the default --lr' if args.transfer_lr is None else '--lr ' + args.transfer_lr}, seed 0, "
          f"--threads {args.threads}.\n")
    for target_name, target in targets.items():
        print(f"\n{target_name}\n")
        print("| training | top-1 | minutes (whole command) |")
        print("| --- | --- | --- |")
        for i, (name, flags) in enumerate(runs.items()):
            run = os.path.join(work, f"transfer-{os.path.basename(target)}-{i}")
            result = run_train([*flags, "--data-dir", target, "--save-dir", run], env)
            for line in result["log"].splitlines():
                if "fresh initialisation" in line:
                    print(f"    {line}")
            print(f"| {name} | {_results(run)['final_eval']['acc_top1']:.3f} | {result['wall'] / 60:.2f} |", flush=True)
    print(f"\nwhole section: {(time.time() - started) / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=("speed", "equivalence", "transfer"),
                        default=["speed", "equivalence", "transfer"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--today-epochs", type=int, default=None, help="epochs of today's path (default: --epochs)")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--data-dir", default=FASHION, help="the real Fashion-MNIST files")
    parser.add_argument("--pretrain-images", type=int, default=5000, help="transfer: source images (classes 0-4)")
    parser.add_argument("--pretrain-epochs", type=int, default=3, help="transfer: epochs of the source training")
    parser.add_argument("--transfer-epochs", type=int, default=10, help="transfer: epochs of each target run")
    parser.add_argument("--transfer-lr", default=None, help="transfer: --lr of each target run (a number, or auto)")
    parser.add_argument("--targets", nargs="+", choices=("fashion", "digits"), default=["fashion", "digits"],
                        help="transfer: the target tasks")
    parser.add_argument("--threads", default="auto", help="speed and transfer: --threads of every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as work:
        if "equivalence" in args.only:
            equivalence(args, work)
        if "speed" in args.only:
            speed(args, work)
        if "transfer" in args.only:
            transfer(args, work)


if __name__ == "__main__":
    main()
