"""Run folders: where a run's files go, chosen without ever overwriting a finished run."""

from __future__ import annotations

import json
import os
import re
from typing import Optional

from .checkpoint_format import CHECKPOINTS, LAST, epoch_folders
from ..errors import UsageError

RESULTS = "results.json"
CONFIG = "config.json"


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
