"""Reading a finished run folder for a report: configuration, results, history, export check and checkpoints.

A run is reported once it has finished: ``results.json`` exists and no
live process is writing into the folder. A writer is seen by the
``.tmp-*-<pid>`` names every atomic write and checkpoint uses (see
:mod:`hapi_runner.runfolder.atomic`); a run without ``results.json`` and without a live
writer was killed before its end, and ``--resume`` completes it. Either way
the report is refused in one line rather than drawn from half a run.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import layout as rundir
from .layout import CHECKPOINTS, STATE_FILE, RunPaths, epoch_folders, epoch_name
from ..config.train_config import TrainConfig
from ..errors import HapiRunnerError, UsageError
from .atomic import alive, is_atomic_temp, writer_pid
from .relaunch import resume_command



@dataclass
class RunFolder:
    """What a run folder holds, read once.

    Attributes:
        path: the folder.
        config: ``config.json`` as a dict.
        results: ``results.json`` as a dict.
        rows: ``metrics.csv``, one dict per epoch (numbers as floats, blanks as None).
        export: ``inference/export_report.json``, or None.
        checkpoints: one dict per ``checkpoints/epoch_N/state.json``: ``epoch``,
            ``folder``, ``monitor`` (its ``value``, ``best``...), ``saved_at``.
    """

    path: str
    config: Dict[str, Any]
    results: Dict[str, Any]
    rows: List[Dict[str, Any]] = field(default_factory=list)
    export: Optional[Dict[str, Any]] = None
    checkpoints: List[Dict[str, Any]] = field(default_factory=list)


def live_writer(run_dir: str) -> Optional[int]:
    """The pid of a live process with a temporary file in the run folder or its checkpoints, or None."""
    for folder in (run_dir, RunPaths(run_dir).checkpoints, RunPaths(run_dir).inference):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            pid = writer_pid(name) if is_atomic_temp(name) else None
            if pid is not None and pid != os.getpid() and alive(pid):
                return pid
    return None


def read_run(run_dir: str, need_checkpoints: bool = True, results: Optional[Dict[str, Any]] = None) -> RunFolder:
    """Reads a finished run; UsageError in one line for a folder that is not one, is still training or has no checkpoint.

    ``results`` is given by the training process itself, at its end, before
    it writes them to results.json (which it does once, with the report's
    figures); the folder is then taken as finished. Defaults to None: read results.json.
    """
    if not os.path.isdir(run_dir):
        raise UsageError(f"run folder '{run_dir}' does not exist; pass a folder written by hapi-runner train (output/<model>-<dataset>/run_NNN).")
    if not os.path.isfile(os.path.join(run_dir, rundir.CONFIG)):
        raise UsageError(f"'{run_dir}' has no {rundir.CONFIG}, so it is not a hapi_runner run folder; pass one written by hapi-runner train.")
    pid = None if results is not None else live_writer(run_dir)
    if pid is not None:
        raise UsageError(f"'{run_dir}' is still training (process {pid} is writing into it); make the report once it has finished.")
    if results is None and not rundir.is_finished(run_dir):
        if os.path.isfile(os.path.join(run_dir, rundir.RESULTS)):  # Ctrl-C or SIGTERM: results.json says how far it got
            why = "was interrupted before its end; finish it with"
        else:
            why = f"has no {rundir.RESULTS}: its training is still going or was killed before the end; wait for it, or finish it with"
        raise UsageError(f"'{run_dir}' {why}: {resume_command(run_dir)}")
    run = RunFolder(run_dir, _read_json(os.path.join(run_dir, rundir.CONFIG)),
                    results if results is not None else _read_json(os.path.join(run_dir, rundir.RESULTS)))
    run.rows = read_metrics(RunPaths(run_dir).metrics)
    export_path = RunPaths(run_dir).export_report
    run.export = _read_json(export_path) if os.path.isfile(export_path) else None
    run.checkpoints = read_checkpoints(os.path.join(run_dir, CHECKPOINTS))
    if need_checkpoints and not run.checkpoints:
        raise UsageError(f"'{run_dir}' has no checkpoint (no {CHECKPOINTS}/epoch_N/state.json), so there are no weights to "
                         f"evaluate; pass a run that kept its checkpoints, or train it again.")
    return run


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError) as exc:
        raise HapiRunnerError(f"{path} cannot be read ({type(exc).__name__}: {exc}); the run folder is damaged.") from exc
    if not isinstance(value, dict):
        raise HapiRunnerError(f"{path} holds a {type(value).__name__}, not an object; the run folder is damaged.")
    return value


def read_metrics(path: str) -> List[Dict[str, Any]]:
    """``metrics.csv`` rows with numbers as floats (``epoch`` as int) and blanks as None; [] when the file is absent."""
    if not os.path.isfile(path):
        return []
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                rows.append({key: _number(value, path, line) for key, value in row.items() if key})
    except OSError as exc:
        raise HapiRunnerError(f"{path} cannot be read ({exc.strerror}); the run folder is damaged.") from exc
    for row in rows:
        if row.get("epoch") is not None:
            row["epoch"] = int(row["epoch"])
    return rows


def _number(text: Optional[str], path: str, line: int) -> Optional[float]:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise HapiRunnerError(f"{path}, line {line}: '{text}' is not a number; the run folder is damaged.") from exc


def read_checkpoints(folder: str) -> List[Dict[str, Any]]:
    """One entry per complete ``epoch_N`` checkpoint, in epoch order."""
    if not os.path.isdir(folder):
        return []
    found = []
    for epoch in epoch_folders(folder):
        path = os.path.join(folder, epoch_name(epoch))
        state_path = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state_path):
            continue
        state = _read_json(state_path)
        found.append({"epoch": epoch, "folder": path,
                      "monitor": state.get("monitor") or {}, "saved_at": state.get("saved_at"),
                      "complete": bool(state.get("complete", True))})
    return sorted(found, key=lambda c: c["epoch"])


def resolve_checkpoint(run: RunFolder, checkpoint: str = "best") -> Tuple[Dict[str, Any], str]:
    """The checkpoint entry ``best``, ``last`` or a path names, and a note (``best`` falls back to ``last`` when absent).

    Raises:
        UsageError: the name or path is not one of the run's checkpoints.
    """
    by_folder = {os.path.realpath(c["folder"]): c for c in run.checkpoints}
    if checkpoint in ("best", "last"):
        link = os.path.join(run.path, CHECKPOINTS, checkpoint)
        if os.path.exists(link) and os.path.realpath(link) in by_folder:
            return by_folder[os.path.realpath(link)], ""
        if checkpoint == "best":
            return run.checkpoints[-1], "the run has no best checkpoint (no evaluation was monitored); the last one is shown"
        raise UsageError(f"'{run.path}' has no {CHECKPOINTS}/last; pass --checkpoint best or a checkpoint folder.")
    target = os.path.realpath(checkpoint)
    if target not in by_folder:
        epochs = ", ".join(f"epoch_{c['epoch']}" for c in run.checkpoints)
        raise UsageError(f"checkpoint '{checkpoint}' is not one of this run's ({epochs}); pass best, last or one of them.")
    return by_folder[target], ""


def config_differences(config: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """``(key, value, default)`` for each configuration key whose value is not TrainConfig's default, in field order."""
    defaults = TrainConfig().to_dict()
    return [(key, config[key], defaults.get(key)) for key in config if config[key] != defaults.get(key)]
