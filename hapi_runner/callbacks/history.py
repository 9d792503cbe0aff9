"""History: one row per epoch of training and evaluation figures, written to ``metrics.csv``."""

from __future__ import annotations

import csv
import io
import time
from typing import Any, Dict, List, Optional

from ..paddle_compat import current_lr
from ..training.log_values import metric_logs
from ..runfolder.atomic import atomic_write_text
from .base import RunCallback

COLUMNS = [
    "epoch", "train_loss", "train_acc_top1", "train_acc_top5", "eval_loss", "eval_acc_top1", "eval_acc_top5",
    "lr", "seconds", "images_per_second",
]


class History(RunCallback):
    """Records each epoch's figures and, given a path, keeps ``metrics.csv`` current.

    Figures come from hapi's logs; put :class:`LossMean` before it (the
    Runner does) so that the losses are means over the pass rather than the
    last batch's. Accuracies are hapi's values accumulated over the pass.
    ``seconds`` covers the training pass alone, so ``images_per_second`` is
    training throughput.

    Args:
        csv_path: where to write the table, or None to keep it in memory.
            Defaults to None.

    Attributes:
        rows: one dict per epoch with the keys of ``COLUMNS`` (1-based epochs).
        phase: the training phase, written in a ``phase`` column after the
            others when set (``--fine-tune``'s ``frozen`` and ``unfrozen``).
            Defaults to None: no such column.
    """

    def __init__(self, csv_path: Optional[str] = None):
        super().__init__()
        self.csv_path = csv_path
        self.rows: List[Dict[str, Any]] = []
        self.phase: Optional[str] = None
        self._start = 0.0
        self._images = 0

    # -- state, for checkpoints ------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: Dict[str, Any]) -> bool:
        super().load_state_dict(state)
        self.rows = [dict(r) for r in state.get("rows", [])]
        return True

    def reset(self) -> None:
        """A fresh run starts an empty table."""
        super().reset()
        self.rows = []

    # -- hooks -----------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._start = time.perf_counter()
        self._images = 0

    def on_train_batch_end(self, step, logs=None):
        self._images += int((logs or {}).get("batch_size") or 0)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        metrics = metric_logs(logs, (self.params or {}).get("metrics"))
        row = {c: None for c in COLUMNS}
        row.update(
            epoch=self.epoch,
            train_loss=metrics.get("loss"),
            train_acc_top1=metrics.get("acc_top1", metrics.get("acc")),  # Accuracy() alone is named "acc"
            train_acc_top5=metrics.get("acc_top5"),
            lr=current_lr(self.model) if self.model is not None else None,
            seconds=seconds,
            images_per_second=self._images / seconds if seconds > 0 else None,
        )
        if self.phase is not None:
            row["phase"] = self.phase
        self.rows.append(row)
        self._write()

    def on_eval_end(self, logs=None):
        if not self.rows:
            return
        metrics = metric_logs(logs, (self.params or {}).get("metrics"))
        row = self.rows[-1]
        row.update(eval_loss=metrics.get("loss"), eval_acc_top1=metrics.get("acc_top1", metrics.get("acc")), eval_acc_top5=metrics.get("acc_top5"))
        self._write()

    # -- queries ---------------------------------------------------------
    @property
    def train_seconds(self) -> float:
        return sum(r["seconds"] for r in self.rows)

    def best(self, key: str = "eval_acc_top1") -> Optional[Dict[str, Any]]:
        """The row with the highest ``key`` (first one on ties), or None."""
        scored = [r for r in self.rows if r.get(key) is not None]
        return max(scored, key=lambda r: r[key]) if scored else None

    def _write(self) -> None:
        if not self.csv_path:
            return
        columns = COLUMNS + (["phase"] if any("phase" in row for row in self.rows) else [])
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(row.get(k)) for k in columns})
        atomic_write_text(self.csv_path, buf.getvalue())


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
