"""The values in hapi's callback ``logs``, as numbers and as text for a log line."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence


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


def metric_logs(logs: Dict[str, Any], names: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """The numeric metrics of a hapi log dict, without its bookkeeping keys.

    Args:
        logs: hapi's logs.
        names: the metrics the model measures (a callback's ``params["metrics"]``):
            other keys are dropped. hapi's ``_run_one_epoch`` keeps one logs dict
            as a default argument across calls, so a key of an earlier ``fit`` in
            the same process (``acc_top5`` of a 10-class run, say) is still there.
            Defaults to None: every key.
    """
    out = {}
    for key, value in (logs or {}).items():
        if key in ("step", "batch_size") or (names is not None and key not in names):
            continue
        number = scalar(value)
        if number is not None:
            out[key] = number
    return out


def fmt_value(value) -> str:
    """A metric for a log line: 6 significant digits, or 'none'."""
    return "none" if value is None else f"{value:.6g}"
