"""Files that are whole or absent: atomic writes, strict JSON, and the litter a killed writer leaves.

Every file of a run, of the decoded-image cache and of an export is written
here: to a temporary name beside its target, flushed and fsynced, then
renamed over it, so a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from typing import Any, Callable, List, Optional


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner alone; results are for everyone the umask allows.
FILE_MODE = 0o666 & ~_umask()


DIR_MODE = 0o777 & ~_umask()


TMP_PREFIX = ".tmp-"


def is_atomic_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_write_bytes` (or a checkpoint's ``.tmp-`` folder)."""
    return name.startswith(TMP_PREFIX)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that a crash leaves the old file or the new one, never half of one.

    Temporary file in the same folder, fsync, rename, fsync of the folder.
    A process killed before the rename leaves ``.tmp-*-<pid>`` litter,
    which :func:`remove_litter` clears at the next start.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=writer_suffix(), dir=folder)
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


def writer_suffix() -> str:
    """``-<pid>``: ends the name of every temporary file or folder, so litter tells whose it is."""
    return f"-{os.getpid()}"


def writer_pid(name: str):
    """The pid a temporary name ends with (see :func:`writer_suffix`), or None."""
    match = re.search(r"-(\d+)$", name)
    return int(match.group(1)) if match else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to judge
        return True
    return True


def remove_path(path: str) -> None:
    """Removes a file, symlink or folder tree; a missing path is fine."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def dead_litter(folder: str, is_temporary: Callable[[str], bool] = is_atomic_temp):
    """Names in ``folder`` that ``is_temporary`` picks and whose writer is gone.

    A name without a pid counts as dead (older releases wrote such names);
    one whose pid is a live process other than this one is left alone, so a
    run never deletes another live run's work in progress.
    """
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        if not is_temporary(name):
            continue
        pid = writer_pid(name)
        if pid is not None and pid != os.getpid() and alive(pid):
            continue
        found.append(name)
    return found


def remove_litter(folder: str, is_temporary: Callable[[str], bool] = is_atomic_temp) -> None:
    """Removes the temporary files and folders of writers killed mid-write (see :func:`dead_litter`)."""
    names = dead_litter(folder, is_temporary)
    for name in names:
        remove_path(os.path.join(folder, name))
    if names:
        fsync_dir(folder)


def fsync_tree(folder: str) -> None:
    """Flushes every file under ``folder``, and the folders themselves, to disk (what a library wrote unsynced)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(root)


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
    """Strict JSON (NaN and infinities become null, which every parser reads), written atomically."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _finite(obj.tolist())
    return obj


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


ASIDE_RE = re.compile(re.escape(TMP_PREFIX) + r"old-(.+)-(\d+)$")


def staging_dir(target: str) -> str:
    """A new, empty folder beside ``target`` to build its replacement in (``.tmp-<name>-*-<pid>``, readable as the run is)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.path.basename(target)}-", suffix=writer_suffix(), dir=parent)
    os.chmod(folder, DIR_MODE)  # mkdtemp makes it private
    return folder


def replace_dir(source: str, target: str) -> None:
    """Puts the finished folder ``source`` at ``target``, replacing what is there, durably.

    Two renames: the old folder aside as ``.tmp-old-<name>-<pid>``, the new
    one in, then the parent fsynced and the old folder removed. A crash
    between the renames leaves the old folder aside, and
    :func:`recover_litter` puts it back; a crash before them leaves the
    staging folder, which it removes.
    """
    parent = os.path.dirname(os.path.abspath(target))
    fsync_tree(source)
    old = None
    if os.path.lexists(target):
        old = os.path.join(parent, f"{TMP_PREFIX}old-{os.path.basename(target)}{writer_suffix()}")
        remove_path(old)
        os.replace(target, old)
    os.replace(source, target)
    fsync_dir(parent)
    if old:
        remove_path(old)


def recover_litter(folder: str, name: Optional[str] = None) -> List[str]:
    """Undoes what writers killed mid-write left in ``folder``; returns the folders put back.

    A folder set aside by :func:`replace_dir` goes back in place when its
    target is missing (the kill fell between the two renames); every other
    dead temporary file or folder is removed. A live writer's are left alone.

    Args:
        folder: where to look.
        name: only the litter of this one target (``inference``), for a
            folder that is not the package's own. Defaults to all.
    """
    ours = (lambda n: True) if name is None else (lambda n: n.startswith((f"{TMP_PREFIX}{name}-", f"{TMP_PREFIX}old-{name}-")))
    restored = []
    for entry in dead_litter(folder, lambda n: ASIDE_RE.match(n) is not None and ours(n)):
        target = os.path.join(folder, ASIDE_RE.match(entry).group(1))
        if not os.path.lexists(target):
            os.replace(os.path.join(folder, entry), target)
            restored.append(target)
    remove_litter(folder, lambda n: is_atomic_temp(n) and ours(n))
    if restored:
        fsync_dir(folder)
    return restored
