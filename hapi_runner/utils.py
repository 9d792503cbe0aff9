"""Small helpers shared across the package: atomic files, log values."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from typing import Any, Dict


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner alone; results are for everyone the umask allows.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that a crash leaves the old file or the new one, never half of one.

    Temporary file in the same folder, fsync, rename, fsync of the folder.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def scalar(value: Any):
    """A log value as a float: hapi gives losses as one-element lists."""
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
    if hasattr(value, "item"):
        value = value.item() if getattr(value, "size", 1) == 1 else float(value.ravel()[0])
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_logs(logs: Dict[str, Any]) -> Dict[str, float]:
    """The numeric metrics of a hapi log dict, without its bookkeeping keys."""
    out = {}
    for key, value in (logs or {}).items():
        if key in ("step", "batch_size"):
            continue
        number = scalar(value)
        if number is not None:
            out[key] = number
    return out


def is_finite(value) -> bool:
    return value is not None and math.isfinite(value)


def fmt_value(value) -> str:
    """A metric for a log line: 6 significant digits, or 'none'."""
    return "none" if value is None else f"{value:.6g}"


@contextlib.contextmanager
def stdout_to_stderr():
    """Sends what C++ libraries print to stdout to stderr instead, so ``--json`` output stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):  # and Python-level prints
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
