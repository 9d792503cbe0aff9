"""ModelCheckpoint: crash-safe ``checkpoints/epoch_<N>/`` folders a run can be resumed from.

Layout of a run's ``checkpoints/`` folder::

    epoch_3/  model.pdparams  model.pdopt  rng.pdstate  state.json
    epoch_4/  ...
    last -> epoch_4        (relative symlinks, so checkpoints/best/model.pdparams works)
    best -> epoch_3

A checkpoint is built in a private ``.tmp-epoch_<N>-<pid>/`` folder, every
file and the folder are fsynced, and one ``rename`` publishes it; only then
are ``last`` and ``best`` repointed, each by ``os.replace`` of a fresh
symlink. A process killed at any instant therefore leaves every
``epoch_<N>`` folder whole and ``last`` pointing at a complete one; what it
leaves behind is ``.tmp-*`` litter, removed at the next start.
``state.json`` is written last and holds ``complete: true`` and the sha256
of every other file, so :mod:`hapi_runner.resume` can tell a damaged
checkpoint from a good one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
import warnings
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import HapiRunnerError, UsageError
from ..paddle_compat import lr_schedule_name, optimizer_of, parameter_names, rng_state_for_checkpoint
from ..utils import TMP_PREFIX, fsync_dir, remove_litter, remove_path as _remove
from .base import MonitorCallback

log = logging.getLogger("hapi_runner")

FORMAT = 1
STATE_FILE = "state.json"
PARAMS_FILE = "model.pdparams"
OPT_FILE = "model.pdopt"
RNG_FILE = "rng.pdstate"
DATA_FILES = (PARAMS_FILE, OPT_FILE, RNG_FILE)
LAST = "last"
BEST = "best"
SELF_SOURCE = "checkpoint"
EPOCH_RE = re.compile(r"epoch_(\d+)")


# -- the on-disk layout, shared with hapi_runner.resume ------------------------

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


def link_target(directory: str, link: str) -> Optional[str]:
    """The folder name ``directory/link`` points to (``epoch_4``), or None if it is no symlink."""
    path = os.path.join(directory, link)
    if not os.path.islink(path):
        return None
    return os.path.basename(os.path.normpath(os.readlink(path)))


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


# -- the callback ------------------------------------------------------------

class ModelCheckpoint(MonitorCallback):
    """Writes a resumable checkpoint every ``save_freq`` epochs and keeps ``last``/``best`` links current.

    A checkpoint of epoch N is written once N is over: after the epoch's
    evaluation if it has one (so ``best`` can follow an eval metric), else
    just before the next epoch begins; the last epoch of a ``fit`` (also one
    ended early) is always written. ``best`` points at the saved checkpoint
    with the best value of ``monitor`` (among saved ones: with ``save_freq``
    above 1, off-schedule epochs are never saved); ``best``/``best_epoch``
    hold that value and epoch.

    Args:
        directory: the run's ``checkpoints/`` folder; created if missing.
        save_freq: save every this many (run) epochs. Defaults to 1.
        keep_last: keep only the K newest ``epoch_<N>`` folders; what
            ``best`` and ``last`` point to is never deleted. Defaults to
            None (keep all).
        monitor: the metric ``best`` follows, as for ``MonitorCallback``.
            Defaults to ``acc_top1`` (evaluation top-1 accuracy).
        mode: ``max`` or ``min``. Defaults to the metric's entry in
            ``MODE_TABLE``.
        min_delta: how much better a value has to be to move ``best``.
            Defaults to 0.
        fingerprint: a JSON-able dict describing the run (model, dataset,
            input shape, config fingerprint) that ``resume.restore`` compares
            before loading. Defaults to None (nothing is compared).
        state_sources: ``{name: object}``, objects with ``state_dict()`` and
            ``load_state_dict()`` (other RunCallbacks, the data seeder) whose
            state goes into ``state.json``; may be set after construction.
            This callback's own state is always saved, as ``checkpoint``.
            Defaults to None.
        is_writer: whether this process writes. Defaults to None: rank 0 of
            a ``paddle.distributed`` run (every process when not distributed).

    Attributes:
        global_step: training batches run so far in the run (restored on resume).
        saved: run epochs this callback wrote during the current ``fit``.
    """

    def __init__(self, directory: str, save_freq: int = 1, keep_last: Optional[int] = None, monitor: str = "acc_top1",
                 mode: Optional[str] = None, min_delta: float = 0.0, fingerprint: Optional[Dict[str, Any]] = None,
                 state_sources: Optional[Dict[str, Any]] = None, is_writer: Optional[bool] = None):
        super().__init__(monitor=monitor, mode=mode, min_delta=min_delta)
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise UsageError(f"directory must be the path of the run's checkpoints/ folder, got {directory!r}.")
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1:
            raise UsageError(f"save_freq must be an integer >= 1 (epochs between checkpoints), got {save_freq!r}.")
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise UsageError(f"keep_last must be an integer >= 1 or None (keep every checkpoint), got {keep_last!r}.")
        if fingerprint is not None:
            if not isinstance(fingerprint, dict):
                raise UsageError(f"fingerprint must be a dict such as {{'model': 'lenet', 'dataset': 'cifar10'}}, got {fingerprint!r}.")
            try:
                json.dumps(fingerprint, default=_jsonable)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"fingerprint must hold JSON values only: {exc}.") from None
        if is_writer is not None and not isinstance(is_writer, bool):
            raise UsageError(f"is_writer must be True, False or None (rank 0 writes), got {is_writer!r}.")
        self.directory = os.fspath(directory)
        self.save_freq = save_freq
        self.keep_last = keep_last
        self.fingerprint = dict(fingerprint) if fingerprint is not None else None
        self.state_sources = state_sources
        self._is_writer = is_writer
        self.global_step = 0
        self.saved: List[int] = []
        self._pending: Optional[int] = None
        self._finished = 0
        self._values: Dict[int, float] = {}

    # -- configuration ------------------------------------------------------
    @property
    def state_sources(self) -> Dict[str, Any]:
        return self._state_sources

    @state_sources.setter
    def state_sources(self, sources: Optional[Dict[str, Any]]) -> None:
        sources = dict(sources or {})
        for name, obj in sources.items():
            if not isinstance(name, str) or not name:
                raise UsageError(f"state_sources keys must be non-empty names, got {name!r}.")
            if name == SELF_SOURCE and obj is not self:
                raise UsageError(f"state_sources: the name '{SELF_SOURCE}' is this callback's own; choose another name.")
            if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
                raise UsageError(f"state source '{name}' ({type(obj).__name__}) needs state_dict() and load_state_dict() methods.")
        self._state_sources = sources

    def sources(self) -> Dict[str, Any]:
        """Every object whose state a checkpoint holds, by name: this callback (``checkpoint``) and ``state_sources``.

        Pass this to :func:`hapi_runner.resume.restore`.
        """
        return {SELF_SOURCE: self, **{k: v for k, v in self.state_sources.items() if v is not self}}

    @property
    def is_writer(self) -> bool:
        if self._is_writer is None:
            # Read when needed, not in __init__: the rank is known once the parallel env is up.
            import paddle.distributed as dist

            return int(dist.ParallelEnv().rank) == 0
        return self._is_writer

    # -- state, saved in every checkpoint -----------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "global_step": self.global_step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.global_step = int(state.get("global_step", 0))

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        restored = self._restored  # the base class clears it
        super().on_train_begin(logs)
        if not restored:
            self.global_step = 0
        self.saved = []
        self._pending = None
        self._finished = self.epoch_offset
        self._values = {}
        if self.is_writer:
            os.makedirs(self.directory, exist_ok=True)
            self._clean_leftovers()
            if self.epoch_offset:
                self._forget_later_epochs(self.epoch_offset)

    def on_epoch_begin(self, epoch, logs=None):
        # An epoch without evaluation is saved here, once it is certain no evaluation follows it.
        self._flush()
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, step, logs=None):
        self.global_step += 1

    def on_epoch_end(self, epoch, logs=None):
        self._finished = self.epoch
        last_of_fit = epoch + 1 == (self.params or {}).get("epochs")
        if self.epoch % self.save_freq == 0 or last_of_fit:
            self._pending = self.epoch
        super().on_epoch_end(epoch, logs)  # a train-metric monitor reads its value here

    def on_eval_end(self, logs=None):
        super().on_eval_end(logs)  # an eval-metric monitor reads its value here
        self._flush()

    def on_train_end(self, logs=None):
        self._flush()
        # A fit stopped early (EarlyStopping, NaN guard) ends on an epoch that may not be due: save it anyway.
        if self._finished > self.epoch_offset and self._finished not in self.saved:
            self.save(self._finished)

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        self._values[self.epoch] = value

    # -- saving ------------------------------------------------------------
    def _flush(self) -> None:
        if self._pending is not None:
            epoch, self._pending = self._pending, None
            self.save(epoch)

    def save(self, epoch: int) -> Optional[str]:
        """Saves the model as run epoch ``epoch`` now; returns the folder (None on a non-writing rank)."""
        value = self._values.get(epoch)
        new_best = value is not None and self.update(value)
        if new_best:
            self.best_epoch = epoch  # update() uses self.epoch, which may already be the next one
        self.saved.append(epoch)
        if not self.is_writer:
            return None
        try:
            folder = self._write(epoch, value)
        except OSError as exc:
            # A full disk or a lost mount: drop the half-written copy, keep what was published.
            _remove(os.path.join(self.directory, f"{TMP_PREFIX}{epoch_name(epoch)}-{os.getpid()}"))
            kept = link_target(self.directory, LAST)
            advice = (f"the checkpoint {kept} is intact; free space and continue with --resume" if kept
                      else "no earlier checkpoint exists; free space and start the run again")
            raise HapiRunnerError(
                f"could not write the checkpoint of epoch {epoch} in {self.directory}: {exc.strerror or exc}; {advice}."
            ) from None
        self._point(LAST, epoch_name(epoch))
        if new_best:
            self._point(BEST, epoch_name(epoch))
        self._prune(epoch)
        return folder

    def _write(self, epoch: int, value: Optional[float]) -> str:
        import paddle

        name = epoch_name(epoch)
        tmp = os.path.join(self.directory, f"{TMP_PREFIX}{name}-{os.getpid()}")
        _remove(tmp)
        os.makedirs(tmp)
        network = self.model.network
        optimizer = optimizer_of(self.model)
        with warnings.catch_warnings():
            # An optimizer that has not stepped yet has an empty state; saving it is still right.
            warnings.filterwarnings("ignore", message="The input state dict is empty")
            paddle.save(network.state_dict(), os.path.join(tmp, PARAMS_FILE))
            paddle.save(optimizer.state_dict() if optimizer is not None else {}, os.path.join(tmp, OPT_FILE))
            paddle.save(rng_state_for_checkpoint(), os.path.join(tmp, RNG_FILE))
        files = {f: sha256_file(os.path.join(tmp, f), fsync=True) for f in DATA_FILES}
        state = {
            "format": FORMAT,
            "epoch": epoch,
            "global_step": self.global_step,
            "monitor": {"name": self.monitor, "mode": self.mode, "value": value, "best": self.best, "best_epoch": self.best_epoch},
            "sources": self._source_states(),
            "rng": {"paddle": RNG_FILE, **rng_state_json()},
            "param_names": parameter_names(network),
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "lr_scheduler": lr_schedule_name(self.model),
            "fingerprint": self.fingerprint,
            "paddle_version": paddle.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": files,
            "complete": True,
        }
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        final = os.path.join(self.directory, name)
        self._publish(tmp, final)
        return final

    def _source_states(self) -> Dict[str, Any]:
        states = {}
        for name, obj in self.sources().items():
            state = obj.state_dict()
            try:
                json.dumps(state, default=_jsonable)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"state source '{name}' returned a state that cannot be written as JSON: {exc}.") from None
            states[name] = state
        return states

    def _publish(self, tmp: str, final: str) -> None:
        """Renames the finished ``tmp`` folder to ``final``, replacing an older folder of that name."""
        if os.path.lexists(final):
            # Only a resumed run re-saves an epoch; no link points here then (see _forget_later_epochs).
            old = os.path.join(self.directory, f"{TMP_PREFIX}old-{os.path.basename(final)}-{os.getpid()}")
            _remove(old)
            os.rename(final, old)
            os.rename(tmp, final)
            fsync_dir(self.directory)
            _remove(old)
        else:
            os.rename(tmp, final)
        fsync_dir(self.directory)

    def _point(self, link: str, name: Optional[str]) -> None:
        """Atomically makes ``directory/link`` a relative symlink to ``name`` (None removes it)."""
        path = os.path.join(self.directory, link)
        if name is None:
            if os.path.islink(path):
                os.unlink(path)
                fsync_dir(self.directory)
            return
        tmp = os.path.join(self.directory, f"{TMP_PREFIX}{link}-{os.getpid()}")
        _remove(tmp)
        os.symlink(name, tmp)  # relative: the run folder stays valid when moved or copied
        os.replace(tmp, path)
        fsync_dir(self.directory)

    def _prune(self, current: int) -> None:
        """Deletes all but the ``keep_last`` newest epoch folders up to ``current``, sparing ``last`` and ``best``."""
        if self.keep_last is None:
            return
        protected = {link_target(self.directory, LAST), link_target(self.directory, BEST)}
        candidates = [e for e in epoch_folders(self.directory) if e <= current]
        for epoch in candidates[:-self.keep_last]:
            name = epoch_name(epoch)
            if name in protected:
                continue
            # Renamed first, so a kill mid-delete leaves .tmp litter, not a half-deleted epoch folder.
            doomed = os.path.join(self.directory, f"{TMP_PREFIX}del-{name}-{os.getpid()}")
            _remove(doomed)
            os.rename(os.path.join(self.directory, name), doomed)
            _remove(doomed)
        fsync_dir(self.directory)

    # -- start of a fit ----------------------------------------------------
    def _clean_leftovers(self) -> None:
        """Removes ``.tmp-*`` litter of writers that died; a live process's work is left alone."""
        remove_litter(self.directory)

    def _forget_later_epochs(self, offset: int) -> None:
        """On resume from epoch ``offset``, points ``last``/``best`` back into the history being continued.

        Folders of later epochs belong to a continuation this run abandons;
        they are replaced as the run reaches their epochs.
        """
        later = [e for e in epoch_folders(self.directory) if e > offset]
        if later:
            log.warning("checkpoints of epochs %s come after the resumed epoch %d; this run replaces them as it reaches those epochs.",
                        ", ".join(map(str, later)), offset)
        for link, epoch in ((LAST, offset), (BEST, self.best_epoch)):
            target = epoch_of(link_target(self.directory, link) or "")
            if target is None or target <= offset:
                continue
            keep = epoch is not None and epoch <= offset and is_complete(os.path.join(self.directory, epoch_name(epoch)))
            self._point(link, epoch_name(epoch) if keep else None)


def _jsonable(obj):
    """numpy scalars and arrays as JSON; anything else is an error, not a repr nobody can load back."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

