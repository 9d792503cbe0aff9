"""What a ``--monitor`` name says: which pass (training or evaluation) and which metric."""

from __future__ import annotations


MONITOR_PREFIXES = ("eval_", "val_", "train_")


def split_monitor(monitor: str):
    """``('eval'|'train', metric name)`` for a monitor such as ``acc_top1``, ``eval_loss`` or ``train_loss``."""
    for prefix in MONITOR_PREFIXES:
        if monitor.startswith(prefix):
            return ("train" if prefix == "train_" else "eval"), monitor[len(prefix):]
    return "eval", monitor
