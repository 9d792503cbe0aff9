#!/usr/bin/env python3
"""How far temperature scaling brings the expected calibration error down, measured on images it was not fitted on.

For each case, trains LeNet with ``train.py`` (``--no-report``, so the run is
left uncalibrated), predicts the test split with the last checkpoint, fits the
temperature on one seeded half of it and measures ECE (15 bins) and the
negative log-likelihood on the other half, before and after. Prints a markdown
table; with ``--write`` replaces the ``calibration`` section of docs/benchmarks.md.

    python bench/calibration.py [--cases mini,full] [--threads 2] [--write]

``mini`` is the embedded Fashion-MNIST subset (6,000 train, 1,000 test images)
over 10 epochs; ``full`` is the Debian Fashion-MNIST
(``/usr/share/datasets/fashion-mnist``, 60,000 / 10,000) over 2 epochs; the
table's last column says how long each training took.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.report import update_section  # noqa: E402

CASES = {
    "mini": {"dataset": "fashion-mnist-mini", "epochs": 10, "extra": []},
    "full": {"dataset": "fashion-mnist", "epochs": 2, "extra": ["--data-dir", "/usr/share/datasets/fashion-mnist", "--no-download"]},
}


def train(case: dict, folder: str, threads: int) -> float:
    """Trains LeNet for the case into ``folder``; the seconds it took."""
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--model", "lenet", "--dataset", case["dataset"],
               "--epochs", str(case["epochs"]), "--threads", str(threads), "--verbose", "0", "--no-visualdl",
               "--no-report", "--no-export", "--save-dir", folder, *case["extra"]]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(folder: str, threads: int, seed: int = 0) -> dict:
    """Temperature fitted on half of the test split; ECE and NLL of the other half before and after."""
    from hapi_runner.deploy.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood, probabilities
    from hapi_runner.deploy.tasks import eval_dataset, load_run, run_logits

    run = load_run(folder, threads=str(threads))
    data = eval_dataset(run, None, None, download=False)
    logits = run_logits(run, data, 256)
    order = np.random.default_rng(seed).permutation(len(data))
    fit, held = order[: len(order) // 2], order[len(order) // 2:]
    temperature = fit_temperature(logits[fit], data.labels[fit])
    before, after = probabilities(logits[held]), probabilities(logits[held], temperature)
    labels = data.labels[held]
    return {"top1": float((before.argmax(1) == labels).mean()), "temperature": temperature, "held": len(held),
            "ece_before": expected_calibration_error(before, labels), "ece_after": expected_calibration_error(after, labels),
            "nll_before": negative_log_likelihood(logits[held], labels),
            "nll_after": negative_log_likelihood(logits[held], labels, temperature)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="mini", help="comma-separated: mini, full; default mini")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads; default 2")
    parser.add_argument("--write", action="store_true", help="replace the calibration section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows = ["| dataset | LeNet epochs | top-1 (held-out half) | temperature | ECE before | ECE after | NLL before | NLL after | training |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in args.cases.split(","):
        case = CASES[name]
        with tempfile.TemporaryDirectory(prefix="bench-calibration-") as tmp:
            seconds = train(case, os.path.join(tmp, "run"), args.threads)
            m = measure(os.path.join(tmp, "run"), args.threads)
        rows.append(f"| {case['dataset']} | {case['epochs']} | {m['top1']:.4f} | {m['temperature']:.3f} | {m['ece_before']:.4f} | "
                    f"{m['ece_after']:.4f} | {m['nll_before']:.4f} | {m['nll_after']:.4f} | {seconds:.0f} s |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.write:
        body = ("Temperature scaling (`hapi-runner calibrate`, and the end of every training) on LeNet. The temperature is "
                "fitted on one seeded half of the test split and ECE (15 bins) and NLL are measured on the other half "
                f"({m['held']} images in the last row), so the figures after are not measured on the images the temperature "
                "was fitted to. Accuracy does not change.\n\n"
                f"`python bench/calibration.py --cases {args.cases} --threads {args.threads} --write`, on a 2-core AMD EPYC, "
                "no GPU, Paddle 3.3.1, shared with other jobs while it ran.\n\n" + table)
        update_section(os.path.join(ROOT, "docs", "benchmarks.md"), "calibration", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
