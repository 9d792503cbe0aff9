"""The command that carries on a stopped run, spelled the way the user started theirs.

A run can be started as ``hapi-runner train``, ``python -m hapi_runner train``
or ``python path/to/train.py``; the hint printed on Ctrl-C (and by
``report`` on an unfinished run) repeats that spelling, so the command can be
pasted into the same shell, in the same folder, and work. The run folder is
shown as the process saw it (relative paths stay relative: the shell is in
the folder the run was started from).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Optional

from . import layout

CONSOLE_SCRIPT = "hapi-runner"


def _python(executable: Optional[str] = None) -> str:
    """``python`` or ``python3`` when that name on PATH is this interpreter, else its full path."""
    executable = executable or sys.executable
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and os.path.realpath(found) == os.path.realpath(executable):
            return name
    return shlex.quote(executable)


def program(argv0: Optional[str] = None, executable: Optional[str] = None) -> str:
    """The words that start training, as the user typed them.

    Args:
        argv0: the program as started. Defaults to ``sys.argv[0]``.
        executable: the Python interpreter. Defaults to ``sys.executable``.

    Returns:
        ``hapi-runner train``, ``python -m hapi_runner train`` or
        ``python PATH/train.py`` (the path as typed); ``hapi-runner train``
        for a run started from Python code, whose console script does the same.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0)
    if os.path.splitext(name)[0] == CONSOLE_SCRIPT:
        found = shutil.which(CONSOLE_SCRIPT)
        on_path = found is not None and os.path.realpath(found) == os.path.realpath(argv0)
        # A console script outside PATH (a venv not activated) is shown by the path the user typed.
        return f"{CONSOLE_SCRIPT if on_path else shlex.quote(argv0)} train"
    if name == "__main__.py" and os.path.basename(os.path.dirname(argv0)) == "hapi_runner":
        return f"{_python(executable)} -m hapi_runner train"
    if name.endswith(".py") and name != "__main__.py":
        return f"{_python(executable)} {shlex.quote(argv0)}"  # train.py and scripts like it take train's flags alone
    return f"{CONSOLE_SCRIPT} train"


def shown_path(path: str) -> str:
    """``path`` relative to the current folder when it lies inside it, else as it is."""
    if os.path.isabs(path):
        relative = os.path.relpath(path)
        if not relative.startswith(os.pardir):
            return relative
    return path


def resume_command(run_dir: str, argv0: Optional[str] = None) -> str:
    """``<program> --resume RUN``: it continues from the last checkpoint, or starts a run that has none again."""
    return f"{program(argv0)} --resume {shlex.quote(shown_path(run_dir))}"


def interruption_hint(run_dir: str, argv0: Optional[str] = None) -> str:
    """What a stopped run tells the user: whether checkpoints exist, and the command that carries the run on."""
    command = resume_command(run_dir, argv0)
    if layout.has_checkpoint(run_dir):
        return f"the checkpoints in {os.path.join(shown_path(run_dir), layout.CHECKPOINTS)} are whole; continue with: {command}"
    return f"no epoch had ended, so there is no checkpoint yet; start the run again with: {command}"
