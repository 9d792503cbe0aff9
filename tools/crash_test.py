#!/usr/bin/env python3
"""Kill training with SIGKILL at random moments, resume until done, and check every file of the run.

Each trial trains LeNet on synthetic MNIST-shaped data for ``--epochs``
epochs through ``train.py``. The process is killed at a random moment
(including while checkpoints and exports are being written), then restarted
with ``--resume`` (or afresh, if no checkpoint was written yet) until the run
finishes; the last restart is never killed. Then every file in the run
folder is checked: results.json and config.json parse, metrics.csv has one
row per epoch, every checkpoint verifies (sha256, complete marker) and loads,
``last``/``best`` resolve, the export loads in paddle.inference, curves.png is
a PNG.

    python tools/crash_test.py --trials 10 [--kills 2] [--seed 0]

Prints one line per trial and a summary; exits 1 if any check failed.
"""

import argparse
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def train_command(run_dir, epochs, resume):
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--dataset", "synthetic", "--synthetic-like", "mnist",
           "--synthetic-size", "1024", "--epochs", str(epochs), "--batch-size", "32", "--threads", "1",
           "--verbose", "0", "--save-dir", run_dir, "--no-visualdl"]
    return cmd + (["--resume"] if resume else [])


def has_checkpoint(run_dir):
    return bool(glob.glob(os.path.join(run_dir, "checkpoints", "epoch_*")))


RESUMES = [0]  # runs started with --resume, over the whole script


def wait_for_training(proc, run_dir, started):
    """Blocks until this process has written its config.json (training is starting) or has ended."""
    path = os.path.join(run_dir, "config.json")
    while proc.poll() is None:
        if os.path.exists(path) and os.path.getmtime(path) >= started:
            return time.time()
        time.sleep(0.02)
    return time.time()


def run_once(run_dir, epochs, kill_after=None):
    """Runs train.py; kills it ``kill_after`` seconds into training if given.

    Returns (exit code, killed, seconds of training).
    """
    resume = has_checkpoint(run_dir)
    RESUMES[0] += resume
    cmd = train_command(run_dir, epochs, resume=resume)
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    training_from = wait_for_training(proc, run_dir, started - 1)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return proc.returncode, True, None
    err = proc.communicate()[1]
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed with exit {proc.returncode}: {err.strip().splitlines()[-1:]}")
    return proc.returncode, False, time.time() - training_from


def check_run(run_dir, epochs):
    """Every problem found in a finished run folder (an empty list when all is well)."""
    from hapi_runner.deploy import InferenceModel
    from hapi_runner.runfolder.resume import find_checkpoint, load_checkpoint

    problems = []
    try:
        results = json.load(open(os.path.join(run_dir, "results.json")))
        if results["epochs_run"] != epochs:
            problems.append(f"results.json says {results['epochs_run']} epochs, expected {epochs}")
        json.load(open(os.path.join(run_dir, "config.json")))
    except Exception as exc:  # any parse failure is a finding, not a crash of the checker
        problems.append(f"results/config: {type(exc).__name__}: {exc}")
    rows = open(os.path.join(run_dir, "metrics.csv")).read().strip().splitlines()[1:]
    if [int(r.split(",")[0]) for r in rows] != list(range(1, epochs + 1)):
        problems.append(f"metrics.csv epochs {[r.split(',')[0] for r in rows]}")
    for folder in sorted(glob.glob(os.path.join(run_dir, "checkpoints", "epoch_*"))):
        try:
            load_checkpoint(folder)
        except Exception as exc:
            problems.append(f"{os.path.basename(folder)}: {exc}")
    for link in ("last", "best"):
        try:
            load_checkpoint(find_checkpoint(os.path.join(run_dir, "checkpoints", link)))
        except Exception as exc:
            problems.append(f"{link}: {exc}")
    # Atomic writes' .tmp-*, and an export's staging (.inference.tmp-*) or set-aside (.inference.old-*) folders.
    leftovers = [p for pattern in (".tmp*", ".*.tmp-*", ".*.old-*")
                 for p in glob.glob(os.path.join(run_dir, "**", pattern), recursive=True)]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    try:
        InferenceModel(os.path.join(run_dir, "inference"))
    except Exception as exc:
        problems.append(f"inference: {exc}")
    with open(os.path.join(run_dir, "curves.png"), "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            problems.append("curves.png is not a PNG")
    return problems


def calibrate(epochs):
    """Seconds of training (from config.json to exit) of one uninterrupted run."""
    with tempfile.TemporaryDirectory() as workdir:
        return run_once(os.path.join(workdir, "run"), epochs)[2]


def trial(workdir, epochs, kill_times):
    """One run killed at each of ``kill_times`` (seconds into its training), then finished. Returns a summary dict."""
    run_dir = os.path.join(workdir, "run")
    killed = 0
    resumes_before = RESUMES[0]
    for kill_after in kill_times:
        if os.path.isfile(os.path.join(run_dir, "results.json")):
            break  # killed after it finished: nothing left to interrupt
        _, was_killed, _ = run_once(run_dir, epochs, kill_after=kill_after)
        killed += was_killed
        if not was_killed:
            break  # finished before the kill: nothing left to interrupt
    while not os.path.isfile(os.path.join(run_dir, "results.json")):
        run_once(run_dir, epochs)
    return {"killed": killed, "resumed": RESUMES[0] - resumes_before, "problems": check_run(run_dir, epochs)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kills", type=int, default=2, help="kills per trial")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-kill-seconds", type=float, default=None,
                        help="latest kill, in seconds after training starts; default: the training time of one full run, measured first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    if args.max_kill_seconds is None:
        args.max_kill_seconds = calibrate(args.epochs)
        print(f"one uninterrupted run trains for {args.max_kill_seconds:.1f} s; kills land anywhere in that", flush=True)
    totals = {"trials": 0, "kills": 0, "resumes": 0, "corrupt": 0}
    started = time.time()
    for number in range(1, args.trials + 1):
        with tempfile.TemporaryDirectory() as workdir:
            # Anywhere in training: any epoch, evaluation, checkpoint write or export.
            kill_times = [rng.uniform(0, args.max_kill_seconds) for _ in range(args.kills)]
            outcome = trial(workdir, args.epochs, kill_times)
        totals["trials"] += 1
        totals["kills"] += outcome["killed"]
        totals["resumes"] += outcome["resumed"]
        totals["corrupt"] += len(outcome["problems"])
        print(f"trial {number}: killed {outcome['killed']}x, resumed {outcome['resumed']}x, "
              f"problems: {outcome['problems'] or 'none'}", flush=True)
    print(f"{totals['trials']} trials, {totals['kills']} kills, {totals['resumes']} resumes, "
          f"{totals['corrupt']} problems found, {time.time() - started:.0f} s")
    return 1 if totals["corrupt"] else 0


if __name__ == "__main__":
    sys.exit(main())
