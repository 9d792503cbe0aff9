"""A run's folder: every file name in it, and where a new run goes without ever overwriting a finished one.

Every name a run writes is spelled here and nowhere else; :class:`RunPaths`
turns them into paths::

    run_003/
      config.json        the resolved TrainConfig
      results.json       the run's end: metrics, epochs run, export check (written once, at the end)
      metrics.csv        one row per epoch          curves.png   loss and accuracy curves
      visualdl/          VisualDL logs              report.html  the report a person reads
      bad_images.txt     images skipped by --skip-bad-images
      lr_find.json       the LR sweep of --lr auto  lr_find.png  its curve and suggestions
      checkpoints/       epoch_<N>/ (model.pdparams, model.pdopt, rng.pdstate, [ema.pdparams], state.json),
                         last -> epoch_<N>, best -> epoch_<M>
      inference/         the exported graph and its sidecar (deploy/layout.py), export_report.json
      onnx/              an ONNX export, when asked for
"""

from __future__ import annotations

import json
import os
import re
from typing import List, Optional

from ..errors import UsageError

RESULTS = "results.json"
CONFIG = "config.json"
METRICS = "metrics.csv"
CURVES = "curves.png"
VISUALDL = "visualdl"
REPORT = "report.html"
BAD_IMAGES = "bad_images.txt"
LR_FIND_JSON = "lr_find.json"  # the LR finder's rates, losses and suggestions (--lr auto, hapi-runner lr-find)
LR_FIND_PLOT = "lr_find.png"
CHECKPOINTS = "checkpoints"
INFERENCE = "inference"
ONNX = "onnx"
EXPORT_REPORT = "export_report.json"  # inside the export folder
ONNX_REPORT = "onnx_report.json"  # inside the ONNX export folder
CALIBRATION = "calibration.json"  # the temperature fitted on the evaluation set, ECE before and after

# One checkpoint folder, checkpoints/epoch_<N>/.
STATE_FILE = "state.json"
PARAMS_FILE = "model.pdparams"
OPT_FILE = "model.pdopt"
RNG_FILE = "rng.pdstate"
EMA_FILE = "ema.pdparams"  # optional: only in the checkpoints of a run with an EMA of its weights
LAST = "last"
BEST = "best"
EPOCH_RE = re.compile(r"epoch_(\d+)")


# RunPaths' attributes: the path of each file or folder, under the run folder.
_FILES = {"results": (RESULTS,), "config": (CONFIG,), "metrics": (METRICS,), "curves": (CURVES,),
          "visualdl": (VISUALDL,), "report": (REPORT,), "bad_images": (BAD_IMAGES,), "lr_find_json": (LR_FIND_JSON,),
          "lr_find_plot": (LR_FIND_PLOT,), "checkpoints": (CHECKPOINTS,), "inference": (INFERENCE,), "onnx": (ONNX,),
          "export_report": (INFERENCE, EXPORT_REPORT), "calibration": (CALIBRATION,)}


class RunPaths:
    """The paths of one run folder's files: ``RunPaths(run).results``, ``.checkpoint("best")``...

    Every key of ``_FILES`` is an attribute: ``results``, ``config``, ``metrics``, ``curves``, ``visualdl``,
    ``report``, ``bad_images``, ``lr_find_json``, ``lr_find_plot``, ``checkpoints``, ``inference``, ``onnx``,
    ``export_report``, ``calibration``.

    Args:
        root: the run folder.
    """

    def __init__(self, root: str):
        self.root = os.fspath(root)

    def __fspath__(self) -> str:
        return self.root

    def __repr__(self) -> str:
        return f"RunPaths({self.root!r})"

    def __getattr__(self, name: str) -> str:
        if name in _FILES:
            return os.path.join(self.root, *_FILES[name])
        raise AttributeError(f"a run folder has no file called {name!r}; its files: {', '.join(_FILES)}")

    def checkpoint(self, name: str = LAST) -> str:
        """``checkpoints/<name>``: ``last``, ``best`` or ``epoch_<N>``."""
        return os.path.join(self.root, CHECKPOINTS, name)

    def export(self, fmt: str = "paddle") -> str:
        """The export folder of a format: ``inference/`` for Paddle's graph, ``onnx/`` for ONNX."""
        return self.inference if fmt == "paddle" else self.onnx


def confusion_stem(dataset: str, epoch: int) -> str:
    """``confusion_<dataset>_epoch<N>``: the .csv and .png an evaluation writes into the run folder."""
    return f"confusion_{dataset}_epoch{epoch}"


def evaluation_file(dataset: str, epoch: int, engine: str) -> str:
    """``evaluation_<dataset>_epoch<N>_<engine>.json``: what ``hapi-runner evaluate`` measured, in the run folder."""
    return f"evaluation_{dataset}_epoch{epoch}_{engine}.json"


def epoch_name(epoch: int) -> str:
    return f"epoch_{epoch}"


def epoch_of(name: str) -> Optional[int]:
    """N for a folder name ``epoch_<N>``, else None."""
    match = EPOCH_RE.fullmatch(os.path.basename(os.path.normpath(name)))
    return int(match.group(1)) if match else None


def epoch_folders(directory: str) -> List[int]:
    """The epochs that have an ``epoch_<N>`` folder in ``directory``, ascending (complete or not)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    epochs = (epoch_of(n) for n in names if os.path.isdir(os.path.join(directory, n)) and not os.path.islink(os.path.join(directory, n)))
    return sorted(e for e in epochs if e is not None)


# results.json's ``stop_reason.error`` of a run stopped by Ctrl-C or SIGTERM: written so the user sees how far it
# got, but the run is not over, so its folder is not "finished" (the same command, or --resume, carries it on).
INTERRUPTED = "TrainingInterrupted"


def is_finished(path: str) -> bool:
    """True if ``path`` holds a run that ended (trained to its end, stopped early or failed), not one interrupted."""
    results = os.path.join(path, RESULTS)
    if not os.path.isfile(results):
        return False
    try:
        with open(results, encoding="utf-8") as fh:
            reason = json.load(fh).get("stop_reason")
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: better refuse to overwrite it than lose it
    return not (isinstance(reason, dict) and reason.get("error") == INTERRUPTED)


def has_checkpoint(run: str) -> bool:
    """True if the run folder ``run`` holds a checkpoint: a ``last`` link or an ``epoch_<N>`` folder."""
    directory = os.path.join(run, CHECKPOINTS)
    return os.path.isdir(os.path.join(directory, LAST)) or bool(epoch_folders(directory))


def _check_writable(path: str) -> None:
    """Fails early if ``path`` (or the nearest existing parent) cannot be written."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UsageError(f"save_dir '{path}': '{probe}' is a file, not a folder; choose another --save-dir.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"save_dir '{path}' cannot be written ('{probe}' is not writable); choose another --save-dir.")


def next_run_dir(root: str, name: str) -> str:
    """``root/name/run_NNN`` with NNN one above the highest there."""
    base = os.path.join(root, name)
    numbers = [0]
    if os.path.isdir(base):
        for entry in os.listdir(base):
            match = re.fullmatch(r"run_(\d+)", entry)
            if match:
                numbers.append(int(match.group(1)))
    return os.path.join(base, f"run_{max(numbers) + 1:03d}")


def resolve_run_dir(save_dir: Optional[str], output_root: str, name: str, overwrite: bool = False) -> str:
    """The folder a new run writes to; checked, not yet created.

    Args:
        save_dir: an explicit folder (``--save-dir``), or None for a new
            numbered folder under ``output_root/name/``.
        output_root: parent of the numbered folders.
        name: ``<model>-<dataset>``.
        overwrite: allow an explicit ``save_dir`` that holds a finished run.

    Raises:
        UsageError: the folder holds a finished run and ``overwrite`` is off,
            or it cannot be written.
    """
    if save_dir:
        if is_finished(save_dir) and not overwrite:
            raise UsageError(f"save_dir '{save_dir}' already holds a finished run ({RESULTS}); pass --overwrite to replace it, or choose another --save-dir.")
        _check_writable(save_dir)
        return save_dir
    _check_writable(output_root)
    return next_run_dir(output_root, name)


def create(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"save_dir '{path}' cannot be created: {exc.strerror}; choose another --save-dir.") from None
    return path


# The two look-ups below read folder names only, without Paddle (hapi_runner.runfolder.resume needs it), so a resumed run's
# config.json can be read before the thread count is chosen.

def run_folder_of(path: str) -> Optional[str]:
    """The run folder a ``--resume`` path names, or None.

    Args:
        path: a run folder, its ``checkpoints/`` folder, an ``epoch_<N>``
            folder or a ``last``/``best`` link.

    Returns:
        The nearest of ``path`` and its two parents (links resolved) that
        holds a ``config.json``; None if none does.
    """
    if os.path.isfile(os.path.join(path, CONFIG)):
        return path
    folder = os.path.realpath(path)
    for _ in range(2):
        folder = os.path.dirname(folder)
        if os.path.isfile(os.path.join(folder, CONFIG)):
            return folder
    return None


def latest_run(output_root: str, name: str) -> Optional[str]:
    """The highest-numbered ``output_root/name/run_NNN`` holding a checkpoint (a ``last`` link or an ``epoch_<N>`` folder), or None."""
    base = os.path.join(output_root, name)
    try:
        entries = os.listdir(base)
    except OSError:
        return None
    runs = sorted(((int(m.group(1)), e) for e in entries if (m := re.fullmatch(r"run_(\d+)", e))), reverse=True)
    for _, entry in runs:
        if has_checkpoint(os.path.join(base, entry)):
            return os.path.join(base, entry)
    return None
