"""VisualDLLogger: training curves, evaluation metrics, learning rate and throughput for ``visualdl --logdir``.

Tags written (all scalars):

=============================  ============  =====================================
tag                            x axis        value
=============================  ============  =====================================
``train/loss``                 global step   the batch's loss, every ``log_freq`` steps
``train/acc_top1``, ``_top5``  global step   hapi's running accuracy in the epoch
``train/lr``                   global step   the rate the optimizer uses next
``train/images_per_second``    epoch         training throughput of the epoch
``eval/loss``, ``eval/acc_*``  epoch         each evaluation's figures
=============================  ============  =====================================

The global step counts training batches across epochs and, through
:meth:`VisualDLLogger.state_dict`, across a resume; a resumed run also
appends to the same record file, because the VisualDL server shows only the
newest file of each folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import time
from typing import Any, Dict, Optional

from ..config.checks import check_int
from ..errors import UsageError
from ..paddle_compat import current_lr
from ..training.distributed import is_main
from ..training.log_values import metric_logs
from .base import RunCallback

TRAIN_METRICS = ("loss", "acc_top1", "acc_top5")
EVAL_TAGS = ["eval/acc_top1", "eval/acc_top5", "eval/loss"]
# VisualDL's writer flushes on a timer (120 s by default); a shorter one keeps
# a board opened during training current.
FLUSH_SECONDS = 10


class VisualDLLogger(RunCallback):
    """Writes the run's scalars (and hyper-parameters) as VisualDL records.

    Only the main process of a distributed run writes.

    Args:
        log_dir: the folder for the records, the run's ``visualdl/``.
        log_freq: write training scalars every this many batches (counted
            over the whole run). Defaults to 10.
        hparams: hyper-parameters for VisualDL's hyper-parameter view; values
            that are not numbers or strings are written as JSON text, None
            values are left out. Defaults to None: none written.

    Attributes:
        global_step: training batches seen so far in the run.
    """

    def __init__(self, log_dir: str, log_freq: int = 10, hparams: Optional[Dict[str, Any]] = None):
        super().__init__()
        if not log_dir or not isinstance(log_dir, (str, os.PathLike)):
            raise UsageError(f"log_dir must be a folder path such as '<run>/visualdl', got {log_dir!r}.")
        check_int("log_freq", log_freq, 1, unit="training steps")
        if hparams is not None and not isinstance(hparams, dict):
            raise UsageError(f"hparams must be a dict of name -> value, got {type(hparams).__name__}.")
        if importlib.util.find_spec("visualdl") is None:
            raise UsageError("VisualDL logging needs the visualdl package: pip install visualdl, or turn the logger off.")
        self.log_dir = os.fspath(log_dir)
        self.log_freq = log_freq
        self.hparams = dict(hparams or {})
        self.writer = None
        self.global_step = 0
        self.file_name: Optional[str] = None
        self._hparams_written = False
        self._epoch_start = 0.0
        self._epoch_images = 0

    # -- state, for checkpoints ------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"global_step": self.global_step, "file_name": self.file_name, "hparams_written": self._hparams_written}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        super().load_state_dict(state)
        self.global_step = int(state.get("global_step", 0))
        self.file_name = state.get("file_name")
        self._hparams_written = bool(state.get("hparams_written", False))
        return True

    def reset(self) -> None:
        """A fresh run is a new series: step 0, a new record file, the hyper-parameters written again."""
        super().reset()
        self.global_step, self.file_name, self._hparams_written = 0, None, False

    # -- hooks -----------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if is_main():
            self._open()

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_start = time.perf_counter()
        self._epoch_images = 0

    def on_train_batch_end(self, step, logs=None):
        logs = logs or {}
        self.global_step += 1
        self._epoch_images += int(logs.get("batch_size") or 0)
        if self.writer is None or self.global_step % self.log_freq:
            return
        metrics = metric_logs(logs, (self.params or {}).get("metrics"))
        for name in TRAIN_METRICS:
            if name in metrics:
                self.writer.add_scalar(tag=f"train/{name}", value=metrics[name], step=self.global_step)
        lr = current_lr(self.model) if self.model is not None else None
        if lr is not None:
            self.writer.add_scalar(tag="train/lr", value=lr, step=self.global_step)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        if self.writer is not None and seconds > 0 and self._epoch_images:
            self.writer.add_scalar(tag="train/images_per_second", value=self._epoch_images / seconds, step=self.epoch)

    def on_eval_end(self, logs=None):
        if self.writer is None:
            return
        for name, value in metric_logs(logs, (self.params or {}).get("metrics")).items():
            self.writer.add_scalar(tag=f"eval/{name}", value=value, step=self.epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.close()

    # -- the writer --------------------------------------------------------
    def _open(self) -> None:
        from visualdl import LogWriter

        os.makedirs(self.log_dir, exist_ok=True)
        # A resumed run appends to its own file: the server reads only the
        # newest record file of a folder, so a new file would hide the epochs
        # before the resume.
        reuse = self.file_name if self.file_name and os.path.isfile(os.path.join(self.log_dir, self.file_name)) else ""
        # VisualDL prints a notice when it appends to a file; the run's output is not the place.
        with contextlib.redirect_stdout(io.StringIO()):
            self.writer = LogWriter(logdir=self.log_dir, file_name=reuse, flush_secs=FLUSH_SECONDS)
        self.file_name = os.path.basename(self.writer.file_name)
        if self.hparams and not self._hparams_written:
            self.writer.add_hparams(hparams_dict=hparam_values(self.hparams), metrics_list=list(EVAL_TAGS))
            self._hparams_written = True

    def close(self) -> None:
        """Flushes and closes the record file; the next ``fit`` opens it again."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def hparam_values(hparams: Dict[str, Any]) -> Dict[str, Any]:
    """``hparams`` as VisualDL stores them: numbers and strings; None left out, the rest as JSON text."""
    out: Dict[str, Any] = {}
    for key, value in hparams.items():
        if value is None:
            continue
        if isinstance(value, bool):
            # VisualDL would store a bool as the integer 0 or 1.
            out[str(key)] = str(value).lower()
        elif isinstance(value, (int, float, str)):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value, default=str)
    return out

