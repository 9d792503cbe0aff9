"""Finding, checking and loading the checkpoints ``callbacks.ModelCheckpoint`` writes.

The on-disk format itself (layout, ``state.json``, sha256 records, reading
tensors back) is :mod:`hapi_runner.runfolder.checkpoint_format`; this module decides
which checkpoint to load and puts it into a model and its callbacks.

Resuming a run (what ``Runner.fit`` does with ``--resume``)::

    point = restore(model, find_checkpoint(path), expected_fingerprint, checkpoint.sources())
    set_epoch_offset([*callbacks, seeder], point.epoch)
    model.fit(..., epochs=total_epochs - point.epoch, callbacks=callbacks)

``paddle.Model.fit`` numbers epochs from 0 on every call; the offset makes
the callbacks and the data seeder count on from the checkpoint's epoch, so
shuffling, augmentation, the LR schedule and the RNG streams continue as if
the run had never stopped.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Iterable, List, NamedTuple, Optional

from .checkpoint_format import CheckpointError, load_checkpoint, load_tensors, restore_rng_json, weight_files
from .layout import (CHECKPOINTS, EMA_FILE, LAST, OPT_FILE, PARAMS_FILE, RNG_FILE, STATE_FILE, epoch_folders, epoch_name,
                     epoch_of)
from .checkpoint_format import short_path as _short
from ..errors import HapiRunnerError, UsageError
from ..paddle_compat import (lr_schedule_name, optimizer_of, parameter_names, remap_optimizer_state, restore_grad_scaler,
                            split_scaler_state)

log = logging.getLogger("hapi_runner")

# Compared first and named in the message, in this order; any other keys follow.
FINGERPRINT_KEYS = ("model", "dataset", "input_shape", "num_classes")
LABELS = {"input_shape": "input shape", "num_classes": "classes", "config": "config fingerprint", "parameters": "network tensor",
          "ema": "EMA decay (--ema)", "accumulate_grad_batches": "batches per optimizer step (--accumulate-grad-batches)"}


class ResumePoint(NamedTuple):
    """Where a restored run stands.

    Attributes:
        epoch: run epochs finished (the checkpoint's ``epoch_<N>``).
        global_step: training batches run so far.
        folder: the checkpoint folder actually loaded (an older one if the
            requested one was damaged).
    """

    epoch: int
    global_step: int
    folder: str


# -- finding -----------------------------------------------------------------

def find_checkpoint(path: str) -> str:
    """The checkpoint folder ``path`` names.

    Args:
        path: a run folder (its ``checkpoints/last``), a ``checkpoints/``
            folder (its ``last``), an ``epoch_<N>`` folder, or a
            ``last``/``best`` link. A missing or dangling ``last`` falls back
            to the highest ``epoch_<N>`` folder.

    Returns:
        The real path of the checkpoint folder; not yet verified (that is
        :func:`load_checkpoint`'s job).

    Raises:
        UsageError: ``path`` does not exist or holds no checkpoint.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise UsageError(f"checkpoint path '{path}' does not exist; pass a run folder, its checkpoints/ folder or an epoch_<N> folder.")
    if os.path.islink(path) and not os.path.exists(path):
        raise UsageError(f"checkpoint path '{path}' is a link to '{os.readlink(path)}', which does not exist; pass an epoch_<N> folder.")
    if os.path.isfile(os.path.join(path, STATE_FILE)) or epoch_of(os.path.realpath(path)) is not None:
        return os.path.realpath(path)
    directory = os.path.join(path, CHECKPOINTS) if os.path.isdir(os.path.join(path, CHECKPOINTS)) else path
    last = os.path.join(directory, LAST)
    if os.path.isdir(last):
        return os.path.realpath(last)
    epochs = epoch_folders(directory)
    if epochs:
        return os.path.realpath(os.path.join(directory, epoch_name(epochs[-1])))
    raise UsageError(f"no checkpoint in '{path}' (no {LAST} link and no epoch_<N> folder); "
                     f"pass a run folder that was trained with checkpoints, or an epoch_<N> folder.")


# -- checking ----------------------------------------------------------------
# A checkpoint's own integrity (state.json, sha256) is the format's: checkpoint_format.load_checkpoint.

RESUME_ADVICE = "resume with the same settings or start a new run without --resume"


def check_fingerprint(saved: Optional[Dict[str, Any]], expected: Optional[Dict[str, Any]], where: str = "checkpoint",
                      advice: str = RESUME_ADVICE) -> None:
    """Raises UsageError naming the first field where ``saved`` and ``expected`` differ.

    Only keys both hold are compared (either being None compares nothing),
    so adding a field to the fingerprint does not orphan old checkpoints.
    """
    if not saved or not expected:
        return
    keys = [k for k in FINGERPRINT_KEYS if k in saved and k in expected]
    keys += sorted(k for k in saved if k in expected and k not in FINGERPRINT_KEYS)
    for key in keys:
        if _normal(saved[key]) != _normal(expected[key]):
            label = LABELS.get(key, key.replace("_", " "))
            held, here = saved[key], expected[key]
            if isinstance(held, dict) and isinstance(here, dict):  # name the first entry that differs, not the whole table
                entry = next(k for k in [*held, *here] if _normal(held.get(k)) != _normal(here.get(k)))
                held, here = (f"{entry} {_show(v.get(entry)) if entry in v else 'absent'}" for v in (held, here))
            raise UsageError(f"{where} is for {label} {_show(held)}, this run is {_show(here)}; {advice}.")


def check_optimizer(model, state: Dict[str, Any]) -> None:
    """Raises UsageError if the checkpoint's optimizer or LR schedule is of another kind than ``model``'s.

    Paddle would fail later, mid-training, on the first step of the new optimizer.
    """
    optimizer = optimizer_of(model)
    here = {"optimizer": type(optimizer).__name__ if optimizer is not None else None, "lr_scheduler": lr_schedule_name(model)}
    for key, label in (("optimizer", "optimizer"), ("lr_scheduler", "LR schedule")):
        if key in state and state[key] != here[key]:
            raise UsageError(f"checkpoint was trained with {label} {state[key] or 'none (a constant rate)'}, "
                             f"this run uses {here[key] or 'none (a constant rate)'}; resume with the checkpoint's settings.")


# -- restoring ---------------------------------------------------------------

def restore(model, checkpoint_folder: str, expected_fingerprint: Optional[Dict[str, Any]] = None,
            state_sources: Optional[Dict[str, Any]] = None) -> ResumePoint:
    """Loads a checkpoint into a prepared ``paddle.Model`` and the run's stateful objects.

    Restores the weights, the optimizer's state (accumulators, the LR
    scheduler's position and the AMP loss scaler's state), Paddle's, numpy's and Python's global RNG states
    and each state source. A damaged checkpoint (missing or garbled
    ``state.json``, a file that fails its sha256, unloadable tensors) is
    skipped with a warning for the newest older good ``epoch_<N>`` beside it.

    Args:
        model: a ``paddle.Model`` already prepared with its optimizer.
        checkpoint_folder: an ``epoch_<N>`` folder, e.g. from :func:`find_checkpoint`.
        expected_fingerprint: this run's fingerprint; a checkpoint whose own
            differs is refused. Defaults to None (not compared).
        state_sources: ``{name: object with load_state_dict()}``, as
            ``ModelCheckpoint.sources()`` returns. Defaults to None.

    Returns:
        A :class:`ResumePoint`: ``(epoch, global_step, folder)``.

    Raises:
        UsageError: the checkpoint belongs to another model, dataset or input shape.
        HapiRunnerError: no good checkpoint at or before the requested one.
    """
    problems = []
    for folder in _candidates(checkpoint_folder):
        try:
            state = load_checkpoint(folder)
            check_fingerprint(state.get("fingerprint"), expected_fingerprint)
            check_optimizer(model, state)
            tensors = load_tensors(folder, weight_files(state))
        except CheckpointError as exc:
            problems.append(str(exc))
            log.warning("%s Trying the previous checkpoint.", exc)
            continue
        _apply(model, state, tensors, state_sources or {})
        if problems:
            log.warning("resuming from the older checkpoint '%s'.", _short(folder))
        return ResumePoint(int(state["epoch"]), int(state.get("global_step", 0)), state["folder"])
    raise HapiRunnerError(f"no usable checkpoint at or before '{_short(checkpoint_folder)}': {' '.join(problems)} "
                          f"Pass another checkpoint, or start afresh without --resume.")


def set_epoch_offset(objects: Iterable[Any], epoch: int) -> None:
    """Sets ``epoch_offset = epoch`` on every object that has one (RunCallbacks, the data seeder).

    An instance attribute, so other runs in the same process keep counting from 0.
    """
    for obj in objects:
        if hasattr(obj, "epoch_offset"):
            obj.epoch_offset = int(epoch)


def _candidates(folder: str) -> List[str]:
    """``folder`` first, then the older ``epoch_<N>`` folders beside it, newest first."""
    folder = os.path.realpath(folder)
    number = epoch_of(folder)
    if number is None:
        return [folder]
    parent = os.path.dirname(folder)
    return [folder] + [os.path.join(parent, epoch_name(e)) for e in reversed(epoch_folders(parent)) if e < number]


def _apply(model, state: Dict[str, Any], tensors: Dict[str, Any], state_sources: Dict[str, Any]) -> None:
    network = model.network
    params = tensors[PARAMS_FILE]
    _check_params(network, params, state["folder"])
    network.set_state_dict(params)
    optimizer = optimizer_of(model)
    saved_opt, saved_scaler = split_scaler_state(tensors[OPT_FILE])
    if optimizer is not None and saved_opt:
        # Re-keyed by structured name: this process may have named the parameters differently.
        opt_state = remap_optimizer_state(saved_opt, state.get("param_names") or {}, parameter_names(network))
        optimizer.set_state_dict(opt_state)
    restore_grad_scaler(model, saved_scaler)
    _restore_rng(state.get("rng") or {}, tensors[RNG_FILE])
    saved = state.get("sources") or {}
    for name, obj in state_sources.items():
        if name in saved:
            obj.load_state_dict(saved[name])
            # A source whose state names a tensor file (the EMA's ema.pdparams) gets that file's arrays.
            arrays = saved[name].get("file") if isinstance(saved[name], dict) else None
            if arrays in tensors and callable(getattr(obj, "load_arrays", None)):
                obj.load_arrays(tensors[arrays])
        else:
            log.warning("checkpoint '%s' holds no state for '%s'; it starts afresh.", _short(state["folder"]), name)


def _check_params(network, params: Dict[str, Any], folder: str) -> None:
    """UsageError unless ``params`` fits ``network`` key for key and shape for shape."""
    own = network.state_dict()
    missing = [k for k in own if k not in params]
    extra = [k for k in params if k not in own]
    if missing or extra:
        raise UsageError(f"checkpoint '{_short(folder)}' does not fit this model: "
                         f"missing {', '.join(missing[:3]) or 'nothing'}, unexpected {', '.join(extra[:3]) or 'nothing'}.")
    for key, tensor in own.items():
        if list(params[key].shape) != list(tensor.shape):
            raise UsageError(f"checkpoint '{_short(folder)}' does not fit this model: {key} is "
                             f"{list(params[key].shape)} there and {list(tensor.shape)} here.")


def _restore_rng(rng: Dict[str, Any], paddle_state) -> None:
    import paddle

    # A state of other devices (saved on GPUs, resumed on the CPU) fails the length check (ValueError) or
    # pybind's argument check (TypeError); the weights still load, so it is a warning, not a failure.
    try:
        paddle.set_rng_state(paddle_state)
    except (ValueError, TypeError, RuntimeError) as exc:
        log.warning("Paddle's random state could not be restored (%s: %s); dropout and random ops will differ from an unbroken run.",
                    type(exc).__name__, exc)
    restore_rng_json(rng)


def _normal(value):
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def load_weights(network, checkpoint_folder: str, expected_fingerprint: Optional[Dict[str, Any]] = None,
                 prefer_ema: bool = True) -> Dict[str, Any]:
    """Loads only the weights of a verified checkpoint into ``network`` (for evaluation and export).

    A checkpoint of a run with ``--ema`` holds two sets; its EMA weights
    (``ema.pdparams``) are the run's evaluated and exported ones, and are
    loaded unless ``prefer_ema`` is False.

    Args:
        prefer_ema: load ``ema.pdparams`` where the checkpoint has one. Defaults to True.

    Returns:
        The checkpoint's ``state.json``, with ``weights_file`` added: the file loaded.

    Raises:
        CheckpointError: the checkpoint is incomplete or corrupt.
        UsageError: it belongs to another model, dataset or input shape.
    """
    state = load_checkpoint(checkpoint_folder)
    check_fingerprint(state.get("fingerprint"), expected_fingerprint,
                      advice="pass a checkpoint of this run (last, best, or one of its checkpoints/epoch_N)")
    chosen = EMA_FILE if prefer_ema and EMA_FILE in state["files"] else PARAMS_FILE
    params = load_tensors(state["folder"], [chosen])[chosen]
    _check_params(network, params, state["folder"])
    network.set_state_dict(params)
    state["weights_file"] = chosen
    return state
