"""Run folders: where a run's files go, chosen without ever overwriting a finished run, and the config a run was trained with."""

from __future__ import annotations

import json
import os
import re
from typing import Optional

from .config import TrainConfig, from_mapping
from .errors import HapiRunnerError, UsageError

RESULTS = "results.json"
CONFIG = "config.json"


def is_finished(path: str) -> bool:
    return os.path.isfile(os.path.join(path, RESULTS))


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


def read_run_config(run_dir: str) -> TrainConfig:
    """The TrainConfig a run was trained with (its ``config.json``).

    Raises:
        UsageError: ``run_dir`` is not a folder, or holds no ``config.json``.
        HapiRunnerError: ``config.json`` cannot be read or is not JSON.
    """
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise UsageError(f"run folder '{run_dir}' does not exist; pass a folder written by hapi-runner train (output/<model>-<dataset>/run_NNN).")
    if not os.path.isfile(path):
        raise UsageError(f"'{run_dir}' has no {CONFIG}, so it is not a hapi_runner run folder; pass one written by hapi-runner train.")
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, ValueError) as exc:
        raise HapiRunnerError(f"{path} cannot be read ({type(exc).__name__}); the run folder is damaged.") from exc
    return from_mapping(values, source=path)
