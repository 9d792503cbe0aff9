"""Argument checks shared by every module: one wording, one place.

Each check raises :class:`UsageError` (also a ``ValueError``) naming the
argument, the value received and what is allowed, and returns the value so
callers can check and assign in one line. This module imports nothing of the
package but ``errors``, so any module may use it without a cycle.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Iterable, Optional, Tuple

from ..errors import UsageError


def closest(value: Any, choices: Iterable[Any]) -> Optional[str]:
    """The choice spelt most like ``value``, or None when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    return close[0] if close else None


def suggest(value: Any, choices: Iterable[Any]) -> str:
    """Returns ' Did you mean X?' for the closest choice, or ''."""
    close = closest(value, choices)
    return f" Did you mean '{close}'?" if close else ""


# What other trainers (timm, Keras, Lightning, PaddleClas) or plain English call a setting, and its name here:
# spelling alone would send 'learning_rate' to 'early_stopping_patience'.
ALIASES = {
    "learning_rate": "lr", "lr_rate": "lr", "learningrate": "lr", "base_lr": "lr", "rate": "lr",
    "bs": "batch_size", "batchsize": "batch_size", "batch": "batch_size", "train_batch_size": "batch_size",
    "epoch": "epochs", "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "nepochs": "epochs",
    "wd": "weight_decay", "decay": "weight_decay", "arch": "model", "net": "model", "network": "model", "model_name": "model",
    "data": "data_dir", "data_path": "data_dir", "dataset_dir": "data_dir", "root": "data_dir",
    "output_dir": "save_dir", "out_dir": "save_dir", "output": "save_dir", "log_dir": "save_dir",
    "workers": "num_workers", "j": "num_workers", "img_size": "image_size", "input_size": "image_size",
    "resolution": "image_size", "smoothing": "label_smoothing", "warmup": "warmup_epochs", "sched": "lr_schedule",
    "scheduler": "lr_schedule", "schedule": "lr_schedule", "opt": "optimizer", "patience": "early_stopping_patience",
    "gpus": "device", "cuda": "gpu", "num_threads": "threads", "model_ema": "ema", "model_ema_decay": "ema",
    "grad_clip": "clip_grad", "clip": "clip_grad", "checkpoint": "resume",
}


def alias_of(name: str) -> Optional[str]:
    """The setting ``name`` means (:data:`ALIASES`; words joined by ``_`` or ``-``), or None."""
    return ALIASES.get(name.lower().replace("-", "_"))


def suggest_name(name: str, known: Iterable[str]) -> str:
    """' Did you mean X?' for a setting's name: its meaning first (:data:`ALIASES`), then its spelling."""
    known = list(known)
    target = alias_of(name)
    return f" Did you mean '{target}'?" if target in known else suggest(name, known)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else UsageError listing them."""
    choices = list(choices)
    if value not in choices:
        raise UsageError(
            f"{name} '{value}' is not known; choose one of: {', '.join(map(str, choices))}.{suggest(value, choices)}"
        )
    return value


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters, so a huge bad value does not flood the one-line error."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def is_int(value: Any) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is an int to Python, not to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a finite ``int`` or ``float`` that is not a ``bool``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range, e.g. from a config file
        return False


def check_int(name: str, value: Any, minimum: Optional[int] = None, maximum: Optional[int] = None,
              unit: str = "") -> int:
    """``value`` if it is an integer within ``[minimum, maximum]``, else UsageError."""
    bounds = _describe_bounds(minimum, maximum, False, False)
    unit = f" ({unit})" if unit else ""
    if not is_int(value):
        raise UsageError(f"{name} must be an integer{' ' + bounds if bounds else ''}{unit}, got {short_repr(value)}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise UsageError(f"{name} must be {bounds}{unit}, got {value}.")
    return value


def check_number(name: str, value: Any, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` if it is a finite number within the bounds (open or closed), else UsageError."""
    bounds = _describe_bounds(low, high, low_open, high_open)
    if not is_number(value):
        raise UsageError(f"{name} must be a finite number, got {short_repr(value)}.")
    low_bad = low is not None and (value <= low if low_open else value < low)
    high_bad = high is not None and (value >= high if high_open else value > high)
    if low_bad or high_bad:
        raise UsageError(f"{name} must be {bounds}, got {value}.")
    return value


def check_optional_number(name: str, value: Any, **bounds: Any) -> Optional[float]:
    """None, or a number as :func:`check_number` wants it."""
    return None if value is None else check_number(name, value, **bounds)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``, else UsageError."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, got {short_repr(value)}.")
    return value


def check_text(name: str, value: Any, what: str = "a non-empty string") -> str:
    """``value`` if it is a non-empty string, else UsageError saying it must be ``what``."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"{name} must be {what}, got {short_repr(value)}.")
    return value


def check_list(name: str, value: Any, what: str = "a non-empty list") -> list:
    """``value`` as a list if it is a non-empty list or tuple, else UsageError saying it must be ``what``."""
    if not isinstance(value, (list, tuple)) or not value:
        raise UsageError(f"{name} must be {what}, got {short_repr(value)}.")
    return list(value)


def check_path(name: str, value: Any, optional: bool = True) -> Optional[str]:
    """A path given as a string (None allowed when ``optional``); a NUL character is refused."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a path (a string), got {short_repr(value)}.")
    if "\x00" in value:
        raise UsageError(f"{name} {value!r} holds a NUL character, which no path can; remove it.")
    return value


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(name: str, value: Any) -> Optional[int]:
    """Bytes from ``value``: an integer, or a number with K, M, G or T (``20G``, ``500M``, ``1.5T``); None stays None."""
    if value is None:
        return None
    if is_int(value):
        return check_int(name, value, minimum=0, unit="bytes; 0 never caches")
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise UsageError(f"{name} must be a size such as 20G, 500M or 0 (bytes; 0 never caches), got {short_repr(value)}.")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)


def parse_duration(name: str, value: Any) -> Optional[float]:
    """Seconds from ``value``: a number of seconds, or a number with s, m or h (``90s``, ``20m``, ``1.5h``); None stays None."""
    if value is None:
        return None
    match = _DURATION.match(str(value)) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()] if match else 0.0
    if seconds <= 0:
        raise UsageError(f"{name} must be a duration above 0 such as 90s, 20m or 1.5h (a bare number is seconds), "
                         f"got {short_repr(value)}.")
    return seconds


def parse_device(value: Any) -> str:
    """Normalises ``auto``, ``cpu``, ``gpu`` and ``gpu:N`` (lower case, no spaces)."""
    text = str(value).strip().lower()
    if text in ("auto", "cpu", "gpu"):
        return text
    # isascii: str.isdigit accepts digits of other scripts ('gpu:٣') that int() reads but no one means.
    if text.startswith("gpu:") and text[4:].isascii() and text[4:].isdigit():
        return text
    raise UsageError(f"device '{value}' is not valid; use auto, cpu, gpu or gpu:N (N the card's index).")


def device_kind_index(value: Any) -> Tuple[str, int]:
    """``('cpu', 0)`` or ``('gpu', N)`` for an explicit device: ``cpu``, ``gpu`` or ``gpu:N`` (not ``auto``)."""
    text = parse_device(value)
    if text == "auto":
        raise UsageError("device 'auto' is not valid here; use cpu, gpu or gpu:N (N the card's index).")
    if text == "cpu":
        return "cpu", 0
    return "gpu", int(text[4:]) if ":" in text else 0


def parse_threads(value: Any) -> str:
    """``auto`` or a positive integer, kept as a string."""
    text = str(value).strip().lower()
    if text == "auto":
        return text
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return text
    raise UsageError(f"threads '{value}' is not valid; use a positive integer or 'auto'.")


def _describe_bounds(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def check_recipe_args(*, label_smoothing: Any = 0.0, mixup: Any = 0.0, cutmix: Any = 0.0, mix_prob: Any = 1.0,
                      randaugment: Any = None, random_erasing: Any = 0.0, ema: Any = None, clip_grad: Any = None,
                      accumulate_grad_batches: Any = 1) -> dict:
    """Checks the training-technique settings together; returns them as plain numbers (None where off).

    Args:
        label_smoothing: epsilon in ``[0, 1)``. Defaults to 0.0.
        mixup, cutmix: Beta alphas, ``>= 0`` (0 is off). Default to 0.0.
        mix_prob: probability that a batch is mixed, in ``[0, 1]``. Defaults to 1.0.
        randaugment: magnitude in ``[0, 10]`` (timm's scale; its policies clip at 10), or None for off.
            Defaults to None.
        random_erasing: probability in ``[0, 1]``. Defaults to 0.0.
        ema: decay in ``(0, 1)``, or None for off. Defaults to None.
        clip_grad: largest global gradient norm, ``> 0``; None or 0 is off. Defaults to None.
        accumulate_grad_batches: batches per optimizer step, ``>= 1``. Defaults to 1.
    """
    return {
        "label_smoothing": float(check_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)),
        "mixup": float(check_number("mixup", mixup, 0.0)),
        "cutmix": float(check_number("cutmix", cutmix, 0.0)),
        "mix_prob": float(check_number("mix_prob", mix_prob, 0.0, 1.0)),
        "randaugment": None if randaugment is None else float(check_number("randaugment", randaugment, 0.0, 10.0)),
        "random_erasing": float(check_number("random_erasing", random_erasing, 0.0, 1.0)),
        "ema": None if ema is None else float(check_number("ema", ema, 0.0, 1.0, low_open=True, high_open=True)),
        "clip_grad": None if clip_grad is None or (is_number(clip_grad) and clip_grad == 0)
        else float(check_number("clip_grad", clip_grad, 0.0, low_open=True)),
        "accumulate_grad_batches": check_int("accumulate_grad_batches", accumulate_grad_batches, 1),
    }
