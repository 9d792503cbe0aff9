"""ModelCheckpoint: when a run writes a resumable checkpoint, and which one ``best`` is.

What a checkpoint looks like on disk, and how it is written without ever
leaving a half one, is :mod:`hapi_runner.runfolder.checkpoint_format`'s job; this
callback decides when to save and what goes into ``state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

from ..runfolder import checkpoint_format as fmt
from ..runfolder import layout as names
from ..config.checks import check_bool, check_int
from ..errors import HapiRunnerError, UsageError
from ..paddle_compat import (lr_schedule_name, optimizer_of, optimizer_state_with_scaler, parameter_names,
                             rng_state_for_checkpoint)
from ..runfolder.atomic import recover_litter
from .base import MonitorCallback

log = logging.getLogger("hapi_runner")

SELF_SOURCE = "checkpoint"


class ModelCheckpoint(MonitorCallback):
    """Writes a resumable checkpoint every ``save_freq`` epochs and keeps ``last``/``best`` links current.

    hapi calls ``on_epoch_end`` and then, on an evaluated epoch,
    ``on_eval_end``; whether an evaluation follows an epoch is known only
    when it happens or the next epoch begins. So an epoch that is over waits
    in ``unsaved`` until then, and :meth:`_should_save`, the one save
    decision, is asked at the first of: its evaluation's end, the next
    epoch's begin, the end of training. It says yes to every
    ``save_freq``-th run epoch and to the last epoch of a ``fit`` (also one
    ended early). ``best`` points at the saved checkpoint
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
        ema: the run's :class:`~hapi_runner.callbacks.ema.ModelEMA`, or None.
            With one, ``model.pdparams`` holds its training weights (the
            network may hold the EMA weights when a save happens) and
            ``ema.pdparams`` the EMA weights. Defaults to None.

    Attributes:
        global_step: training batches run so far in the run; restored on
            resume, also when the checkpoint watched another metric.
        saved: run epochs this callback wrote during the current ``fit``.
        unsaved: the run epoch that is over and awaits the save decision,
            or None.
    """

    def __init__(self, directory: str, *, save_freq: int = 1, keep_last: Optional[int] = None, monitor: str = "acc_top1",
                 mode: Optional[str] = None, min_delta: float = 0.0, fingerprint: Optional[Dict[str, Any]] = None,
                 state_sources: Optional[Dict[str, Any]] = None, is_writer: Optional[bool] = None, ema=None):
        super().__init__(monitor=monitor, mode=mode, min_delta=min_delta)
        self.ema = ema
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise UsageError(f"directory must be the path of the run's checkpoints/ folder, got {directory!r}.")
        self.directory = os.fspath(directory)
        self.save_freq = check_int("save_freq", save_freq, 1, unit="epochs between checkpoints")
        self.keep_last = None if keep_last is None else check_int("keep_last", keep_last, 1, unit="or None: keep every checkpoint")
        self.fingerprint = _check_fingerprint(fingerprint)
        self.state_sources = state_sources
        self._is_writer = None if is_writer is None else check_bool("is_writer", is_writer)
        self.global_step = 0
        self.saved: List[int] = []
        self.unsaved: Optional[int] = None
        self._value: Optional[float] = None  # the watched figure of the unsaved epoch

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

        Pass this to :func:`hapi_runner.runfolder.resume.restore`.
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

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        """Restores the step count and, if the checkpoint watched the same metric, the best value.

        Returns whether the best value was restored. The step count belongs
        to the run, not to the metric: it continues either way.
        """
        same_monitor = super().load_state_dict(state)
        if not same_monitor:
            super().reset()
            self.restored = True  # the run goes on; only its best value starts afresh
        self.global_step = int(state.get("global_step", 0))
        return same_monitor

    def reset(self) -> None:
        """Forgets the best value and the step count: a fresh run."""
        super().reset()
        self.global_step = 0

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.saved, self.unsaved, self._value = [], None, None
        if self.is_writer:
            os.makedirs(self.directory, exist_ok=True)
            recover_litter(self.directory)  # .tmp-* of writers that died; a live process's work is left alone
            if self.epoch_offset:
                self._forget_later_epochs(self.epoch_offset)

    def on_epoch_begin(self, epoch, logs=None):
        self._decide(end_of_fit=False)  # the previous epoch had no evaluation
        self.unsaved = None  # not due: its moment has passed
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, step, logs=None):
        self.global_step += 1

    def on_epoch_end(self, epoch, logs=None):
        self.unsaved, self._value = self.epoch, None
        super().on_epoch_end(epoch, logs)  # a train-metric monitor reports its value here

    def on_eval_end(self, logs=None):
        super().on_eval_end(logs)  # an eval-metric monitor reports its value here
        self._decide(end_of_fit=False)

    def on_train_end(self, logs=None):
        self._decide(end_of_fit=True)

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        self._value = value

    # -- the save decision -------------------------------------------------
    def _should_save(self, epoch: int, end_of_fit: bool) -> bool:
        """Whether run epoch ``epoch``, now over, is saved: every ``save_freq``-th, and a fit's last however it ended."""
        last_of_fit = epoch == self.epoch_offset + ((self.params or {}).get("epochs") or 0)
        return end_of_fit or last_of_fit or epoch % self.save_freq == 0

    def _decide(self, end_of_fit: bool) -> None:
        if self.unsaved is not None and self._should_save(self.unsaved, end_of_fit):
            epoch, self.unsaved = self.unsaved, None
            self.save(epoch, self._value)

    # -- saving ------------------------------------------------------------
    def save(self, epoch: int, value: Optional[float] = None) -> Optional[str]:
        """Saves the model as run epoch ``epoch`` now; returns the folder (None on a non-writing rank).

        Args:
            epoch: the run epoch the checkpoint is of.
            value: the watched metric at that epoch, which may make it the
                new ``best``. Defaults to None (it cannot).
        """
        new_best = value is not None and self.update(value)
        if new_best:
            self.best_epoch = epoch  # update() uses self.epoch, which may already be the next one
        self.saved.append(epoch)
        if not self.is_writer:
            return None
        try:
            folder = fmt.write_checkpoint(self.directory, epoch, self._tensors(), self._state(epoch, value))
        except OSError as exc:
            # A full disk or a lost mount: the writer dropped its half copy; what was published stays.
            kept = fmt.link_target(self.directory, names.LAST)
            advice = (f"the checkpoint {kept} is intact; free space and continue with --resume" if kept
                      else "no earlier checkpoint exists; free space and start the run again")
            raise HapiRunnerError(
                f"could not write the checkpoint of epoch {epoch} in {self.directory}: {exc.strerror or exc}; {advice}."
            ) from exc
        fmt.point_link(self.directory, names.LAST, names.epoch_name(epoch))
        if new_best:
            fmt.point_link(self.directory, names.BEST, names.epoch_name(epoch))
        if self.keep_last is not None:
            fmt.prune(self.directory, self.keep_last, epoch)
        return folder

    def _tensors(self) -> Dict[str, Any]:
        # The AMP loss scaler travels with the optimizer: a float16 run resumed without it restarts at the initial scale.
        weights = self.ema.training_state_dict() if self.ema is not None else self.model.network.state_dict()
        tensors = {names.PARAMS_FILE: weights,
                   names.OPT_FILE: optimizer_state_with_scaler(self.model),
                   names.RNG_FILE: rng_state_for_checkpoint()}
        if self.ema is not None:
            tensors[names.EMA_FILE] = self.ema.arrays()
        return tensors

    def _state(self, epoch: int, value: Optional[float]) -> Dict[str, Any]:
        import paddle

        optimizer = optimizer_of(self.model)
        return {
            "epoch": epoch,
            "global_step": self.global_step,
            "monitor": {"name": self.monitor, "mode": self.mode, "value": value, "best": self.best, "best_epoch": self.best_epoch},
            "sources": self._source_states(),
            "rng": {"paddle": names.RNG_FILE, **fmt.rng_state_json()},
            "param_names": parameter_names(self.model.network),
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "lr_scheduler": lr_schedule_name(self.model),
            "fingerprint": self.fingerprint,
            "paddle_version": paddle.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _source_states(self) -> Dict[str, Any]:
        states = {}
        for name, obj in self.sources().items():
            state = obj.state_dict()
            try:
                json.dumps(state, default=fmt.jsonable)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"state source '{name}' returned a state that cannot be written as JSON: {exc}.") from exc
            states[name] = state
        return states

    # -- start of a resumed fit ----------------------------------------------
    def _forget_later_epochs(self, offset: int) -> None:
        """On resume from epoch ``offset``, points ``last``/``best`` back into the history being continued.

        Folders of later epochs belong to a continuation this run abandons;
        they are replaced as the run reaches their epochs.
        """
        later = [e for e in names.epoch_folders(self.directory) if e > offset]
        if later:
            log.warning("checkpoints of epochs %s come after the resumed epoch %d; this run replaces them as it reaches those epochs.",
                        ", ".join(map(str, later)), offset)
        for link, epoch in ((names.LAST, offset), (names.BEST, self.best_epoch)):
            target = names.epoch_of(fmt.link_target(self.directory, link) or "")
            if target is None or target <= offset:
                continue
            keep = epoch is not None and epoch <= offset and fmt.is_complete(os.path.join(self.directory, names.epoch_name(epoch)))
            fmt.point_link(self.directory, link, names.epoch_name(epoch) if keep else None)


def _check_fingerprint(fingerprint: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A copy of ``fingerprint`` if it is None or a dict of JSON values, else UsageError."""
    if fingerprint is None:
        return None
    if not isinstance(fingerprint, dict):
        raise UsageError(f"fingerprint must be a dict such as {{'model': 'lenet', 'dataset': 'cifar10'}}, got {fingerprint!r}.")
    try:
        json.dumps(fingerprint, default=fmt.jsonable)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"fingerprint must hold JSON values only: {exc}.") from exc
    return dict(fingerprint)
