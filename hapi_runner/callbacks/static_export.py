"""StaticExport: exports the network for ``paddle.inference`` when training ends, or at each new best.

The callback decides when to export; :func:`hapi_runner.deploy.export.export_model`
does the export, its check and the swap into place.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..training.distributed import is_main
from ..deploy.export import (ExportVerificationError, GraphConversionError, check_agreement, check_input_shape, check_sidecar,
                             check_verify_batch, export_model, recover_export)
from ..errors import UsageError
from .base import MonitorCallback, RunCallback

__all__ = ["ExportVerificationError", "StaticExport", "export_model"]

log = logging.getLogger("hapi_runner")


class StaticExport(MonitorCallback):
    """Exports the network for ``paddle.inference`` when training ends, or at each new best.

    Every export is verified (see :func:`~hapi_runner.deploy.export.export_model`); one that fails
    raises :class:`ExportVerificationError` and leaves the previous export
    in place. Only the main process of a distributed run exports. Put it
    last in the callback list: a failed check raises from ``on_train_end``,
    and hapi skips the ``on_train_end`` of the callbacks after it.

    Args:
        directory: the export folder, the run's ``inference/``.
        input_shape: ``[C, H, W]`` the network takes.
        sidecar: ``mean``, ``std`` (0-1 scale) and what else is known
            (``class_names``, ``model``, ``dataset``); see
            :func:`hapi_runner.deploy.layout.build_sidecar`.
        verify_batch: preprocessed float32 images ``[N, C, H, W]`` from the
            evaluation set (64 is plenty). Defaults to None: exports are not
            checked.
        on_best: export whenever ``monitor`` reaches a new best instead of
            once at the end; the end of training still exports if no epoch
            did. Defaults to False.
        monitor, mode, min_delta: what "best" means, as for
            :class:`~hapi_runner.callbacks.base.MonitorCallback`; used only
            with ``on_best``. Default to ``acc_top1``, the table's mode, 0.
        min_top1_agreement: see :func:`~hapi_runner.deploy.export.export_model`. Defaults to 0.999.
        device: where ``paddle.inference`` runs the check. Defaults to ``cpu``.
        network: the layer to export, when it is not the model's network (a
            model that trains a part of it, such as a head on cached
            features). Defaults to None: the model's network.

    A forward that ``paddle.jit.to_static`` cannot convert does not stop
    the run: the failure is logged as one warning line, kept in ``error``,
    and no later export is tried; the checkpoints hold the trained weights.

    Attributes:
        report: the last export's report, None before one.
        error: Paddle's reason when the network could not be converted, else None.
        exported_epoch: the run's epoch of the export in ``directory``.

    Raises:
        UsageError: a bad argument (at construction).
        ExportVerificationError: from the hook that exported, when the check fails.
    """

    def __init__(self, directory: str, input_shape: Sequence[int], sidecar: Dict[str, Any],
                 verify_batch: Optional[np.ndarray] = None, *, on_best: bool = False, monitor: str = "acc_top1",
                 mode: Optional[str] = None, min_delta: float = 0.0, min_top1_agreement: float = 0.999,
                 device: str = "cpu", network=None):
        super().__init__(monitor=monitor, mode=mode, min_delta=min_delta)
        if not directory or not isinstance(directory, (str, os.PathLike)):
            raise UsageError(f"directory must be a folder path such as '<run>/inference', got {directory!r}.")
        self.directory = os.fspath(directory)
        self.input_shape = check_input_shape(input_shape)
        check_sidecar(sidecar, self.input_shape)
        check_agreement(min_top1_agreement)
        self.sidecar = dict(sidecar)
        self.verify_batch = check_verify_batch(verify_batch, self.input_shape)
        self.on_best = bool(on_best)
        self.min_top1_agreement = float(min_top1_agreement)
        self.device = device
        self.network = network
        self.report: Optional[Dict[str, Any]] = None
        self.exported_epoch: Optional[int] = None
        self._exported_this_fit = False
        self.error: Optional[str] = None

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["exported_epoch"] = self.exported_epoch
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        if not super().load_state_dict(state):
            return False
        self.exported_epoch = state.get("exported_epoch")
        return True

    def reset(self) -> None:
        super().reset()
        self.exported_epoch = None

    def on_train_begin(self, logs=None):
        if self.on_best:
            super().on_train_begin(logs)
        else:  # the monitor matters only with on_best, so it need not be among the metrics
            RunCallback.on_train_begin(self, logs)
        self._exported_this_fit = False
        if is_main():
            recover_export(self.directory)

    def on_epoch_end(self, epoch, logs=None):
        if self.on_best:
            super().on_epoch_end(epoch, logs)

    def on_eval_end(self, logs=None):
        if self.on_best:
            super().on_eval_end(logs)

    def on_monitor(self, value: float, logs: Dict[str, Any]) -> None:
        if self.update(value):
            self.export(f"best {self.monitor}={value:.6g}")

    def on_train_end(self, logs=None):
        # With on_best the folder already holds the best epoch; the last one
        # is exported only when no epoch was exported (no evaluation ran, or
        # nothing beat a restored best and the folder is empty).
        if not self.on_best or not (self._exported_this_fit or os.path.isdir(self.directory)):
            self.export("end of training")

    def export(self, reason: str) -> Optional[Dict[str, Any]]:
        """Exports the network now; returns the report (None on a process that does not write)."""
        if not is_main() or self.error is not None:
            return None
        try:
            report = export_model(
                self.network if self.network is not None else self.model.network, self.directory, self.input_shape, self.sidecar, self.verify_batch,
                min_top1_agreement=self.min_top1_agreement, device=self.device, metadata={"epoch": self.epoch, "reason": reason},
            )
        except GraphConversionError as exc:
            self.error = str(exc)
            log.warning("%s; the run is trained and its checkpoints are kept, but it has no static-graph export "
                        "(make forward convertible, or train with --no-export).", exc)
            return None
        self.report, self.exported_epoch, self._exported_this_fit = report, self.epoch, True
        log.info("exported epoch %d (%s) to %s: top-1 agreement %s, %.1f s", self.epoch, reason, self.directory,
                 f"{report['top1_agreement']:.2%}" if report.get("verified") else "not checked", report["seconds"])
        return report
