"""The values in hapi's callback ``logs``, as numbers and as text for a log line."""

from __future__ import annotations

from typing import Any, Dict


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


def metric_logs(logs: Dict[str, Any]) -> Dict[str, float]:
    """The numeric metrics of a hapi log dict, without its bookkeeping keys."""
    out = {}
    for key, value in (logs or {}).items():
        if key in ("step", "batch_size"):
            continue
        number = scalar(value)
        if number is not None:
            out[key] = number
    return out


def fmt_value(value) -> str:
    """A metric for a log line: 6 significant digits, or 'none'."""
    return "none" if value is None else f"{value:.6g}"
