"""The on-disk format of a run's checkpoints: layout, atomic writes, sha256 records and ``state.json``.

Layout of a run's ``checkpoints/`` folder::

    epoch_3/  model.pdparams  model.pdopt  rng.pdstate  [ema.pdparams]  state.json
    epoch_4/  ...
    last -> epoch_4        (relative symlinks, so checkpoints/best/model.pdparams works)
    best -> epoch_3

``model.pdopt`` holds the optimizer's state and, with AMP, the loss scaler's
(``paddle_compat.optimizer_state_with_scaler``).

A checkpoint is built in a private ``.tmp-epoch_<N>-<pid>/`` folder, every
file and the folder are fsynced, and one ``rename`` publishes it; only then
are ``last`` and ``best`` repointed, each by ``os.replace`` of a fresh
symlink. A process killed at any instant therefore leaves every
``epoch_<N>`` folder whole and ``last`` pointing at a complete one; what it
leaves behind is ``.tmp-*`` litter, removed at the next start.
``state.json`` is written last and holds ``complete: true`` and the sha256
of every other file, so a damaged checkpoint can be told from a good one.
``model.pdparams`` always holds the training weights; a run that keeps an
EMA of its weights (``--ema``) adds them as ``ema.pdparams``, recorded
like the other files, and evaluation and export load those.

:class:`hapi_runner.callbacks.ModelCheckpoint` decides when to write;
:mod:`hapi_runner.runfolder.resume` reads back. Both go through this module alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import warnings
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from ..errors import HapiRunnerError
from .atomic import TMP_PREFIX, fsync_dir, remove_path, replace_dir, writer_suffix
from .layout import BEST, EMA_FILE, LAST, OPT_FILE, PARAMS_FILE, RNG_FILE, STATE_FILE, epoch_folders, epoch_name

FORMAT = 1
DATA_FILES = (PARAMS_FILE, OPT_FILE, RNG_FILE)

# What paddle.load raises on a truncated, empty or garbled file (tried on Paddle 3.3: ValueError "can not
# parse the file", EOFError on an empty one, UnicodeDecodeError, a ValueError, on flipped bytes); pickle's own
# error and a read failure complete the list. Anything else is a bug and must surface as one.
UNLOADABLE = (pickle.UnpicklingError, EOFError, ValueError, OSError)


class CheckpointError(HapiRunnerError):
    """A checkpoint folder that is incomplete, truncated or corrupt."""


# -- layout ------------------------------------------------------------------

def link_target(directory: str, link: str) -> Optional[str]:
    """The folder name ``directory/link`` points to (``epoch_4``), or None if it is no symlink."""
    path = os.path.join(directory, link)
    if not os.path.islink(path):
        return None
    return os.path.basename(os.path.normpath(os.readlink(path)))


def short_path(path: str) -> str:
    """``run_003/checkpoints/epoch_4``: enough of a path to find it, short enough for one line."""
    parts = os.path.normpath(os.fspath(path)).split(os.sep)
    return os.sep.join(parts[-3:])


def temp_name(directory: str, what: str) -> str:
    """This process's private temporary path for ``what`` in ``directory`` (litter if the process dies)."""
    return os.path.join(directory, f"{TMP_PREFIX}{what}{writer_suffix()}")


# -- sha256 records and state.json -----------------------------------------------

def sha256_file(path: str, fsync: bool = False) -> str:
    """The file's sha256; with ``fsync`` also forces it to disk (a read-only descriptor suffices on POSIX)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
        if fsync:
            os.fsync(fh.fileno())
    return digest.hexdigest()


def is_complete(folder: str) -> bool:
    """A cheap check that ``folder`` is a published checkpoint (``state.json`` says complete); hashes are not read."""
    try:
        with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as fh:
            return json.load(fh).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def rng_state_json() -> Dict[str, Any]:
    """numpy's and Python's global RNG states as JSON values (Paddle's goes to ``rng.pdstate``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss_next]}


def restore_rng_json(rng: Dict[str, Any]) -> None:
    """Puts back what :func:`rng_state_json` recorded (a part that is missing is left alone)."""
    if rng.get("numpy"):
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if rng.get("python"):
        version, internal, gauss_next = rng["python"]
        random.setstate((version, tuple(internal), gauss_next))


def jsonable(obj):
    """numpy scalars and arrays as JSON; anything else is an error, not a repr nobody can load back."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def load_checkpoint(folder: str) -> Dict[str, Any]:
    """Reads ``folder/state.json`` and verifies the checkpoint is whole.

    Checks that ``state.json`` parses and says ``complete: true``, and that
    every file it lists exists with the recorded sha256. Tensors are not
    loaded.

    Returns:
        The parsed ``state.json``, with ``folder`` (real path) added.

    Raises:
        CheckpointError: one line naming the folder and what is wrong.
    """
    folder = os.path.realpath(folder)
    where = short_path(folder)
    state = _read_state(folder, where)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint '{where}' has format {state.get('format')!r}; this hapi_runner reads format {FORMAT}.")
    files = state.get("files")
    if not isinstance(files, dict) or any(f not in files for f in DATA_FILES):
        raise CheckpointError(f"checkpoint '{where}': {STATE_FILE} does not list the files {', '.join(DATA_FILES)}.")
    for name, expected in files.items():
        file_path = os.path.join(folder, name)
        if not os.path.isfile(file_path):
            raise CheckpointError(f"checkpoint '{where}' is missing {name}.")
        if sha256_file(file_path) != expected:
            raise CheckpointError(f"checkpoint '{where}': {name} does not match its sha256 (truncated or corrupt).")
    state["folder"] = folder
    return state


def _read_state(folder: str, where: str) -> Dict[str, Any]:
    path = os.path.join(folder, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{where}' has no {STATE_FILE} (incomplete or not a checkpoint folder).") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint '{where}': {STATE_FILE} cannot be read ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(state, dict) or state.get("complete") is not True:
        raise CheckpointError(f"checkpoint '{where}' is not marked complete in {STATE_FILE}.")
    return state


def weight_files(state: Dict[str, Any]) -> List[str]:
    """The tensor files a verified checkpoint's ``state.json`` lists: ``DATA_FILES``, and ``EMA_FILE`` if present."""
    return [*DATA_FILES, *([EMA_FILE] if EMA_FILE in (state.get("files") or {}) else [])]


def load_tensors(folder: str, names: Iterable[str] = DATA_FILES) -> Dict[str, Any]:
    """``{file name: paddle.load(file)}`` for ``names`` in a checkpoint folder.

    Run :func:`load_checkpoint` first: the sha256 check is what finds a
    damaged file; this only turns the errors a damaged file can still raise
    into :class:`CheckpointError` (the cause chained), and lets any other
    exception through as the bug it is.
    """
    import paddle

    loaded = {}
    for name in names:
        try:
            loaded[name] = paddle.load(os.path.join(folder, name))
        except UNLOADABLE as exc:
            raise CheckpointError(f"checkpoint '{short_path(folder)}': {name} cannot be loaded "
                                  f"({type(exc).__name__}: {exc}).") from exc
    return loaded


# -- the atomic writer --------------------------------------------------------

def write_checkpoint(directory: str, epoch: int, tensors: Dict[str, Any], state: Dict[str, Any]) -> str:
    """Writes ``directory/epoch_<epoch>`` whole or not at all; returns its path.

    Args:
        directory: the ``checkpoints/`` folder.
        epoch: the run epoch the checkpoint holds.
        tensors: ``{file name: object for paddle.save}``, one per ``DATA_FILES``,
            and ``EMA_FILE`` when the run keeps an EMA of its weights.
        state: what ``state.json`` records besides ``format``, ``files`` and
            ``complete``, which are added here; JSON values (numpy ones too).

    Raises:
        OSError: the disk refused a write; the temporary folder is removed
            and what was published before is untouched.
    """
    tmp = temp_name(directory, epoch_name(epoch))
    try:
        remove_path(tmp)
        os.makedirs(tmp)
        _save_tensors(tmp, tensors)
        files = {f: sha256_file(os.path.join(tmp, f), fsync=True) for f in tensors}
        record = {"format": FORMAT, **state, "files": files, "complete": True}
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, default=jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
    except OSError:
        remove_path(tmp)
        raise
    final = os.path.join(directory, epoch_name(epoch))
    replace_dir(tmp, final)  # only a resumed run re-saves an epoch; no link points there then (see ModelCheckpoint)
    return final


def _save_tensors(folder: str, tensors: Dict[str, Any]) -> None:
    import paddle

    with warnings.catch_warnings():
        # An optimizer that has not stepped yet has an empty state; saving it is still right.
        warnings.filterwarnings("ignore", message="The input state dict is empty")
        for name, obj in tensors.items():
            paddle.save(obj, os.path.join(folder, name))


def point_link(directory: str, link: str, name: Optional[str]) -> None:
    """Atomically makes ``directory/link`` a relative symlink to ``name`` (None removes it)."""
    path = os.path.join(directory, link)
    if name is None:
        if os.path.islink(path):
            os.unlink(path)
            fsync_dir(directory)
        return
    tmp = temp_name(directory, link)
    remove_path(tmp)
    os.symlink(name, tmp)  # relative: the run folder stays valid when moved or copied
    os.replace(tmp, path)
    fsync_dir(directory)


def prune(directory: str, keep_last: int, current: int) -> None:
    """Deletes all but the ``keep_last`` newest epoch folders up to ``current``, sparing ``last`` and ``best``."""
    protected = {link_target(directory, LAST), link_target(directory, BEST)}
    candidates = [e for e in epoch_folders(directory) if e <= current]
    for epoch in candidates[:-keep_last]:
        name = epoch_name(epoch)
        if name in protected:
            continue
        # Renamed first, so a kill mid-delete leaves .tmp litter, not a half-deleted epoch folder.
        doomed = temp_name(directory, f"del-{name}")
        remove_path(doomed)
        os.rename(os.path.join(directory, name), doomed)
        remove_path(doomed)
    fsync_dir(directory)
