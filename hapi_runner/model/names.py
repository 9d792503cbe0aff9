"""What a ``model`` setting may say: a built-in name, a network in a file or a module, or one built in Python.

The forms, checked here for their spelling only (the file is imported when
the network is built, :mod:`hapi_runner.model.user`):

* ``resnet18``: a key of :data:`hapi_runner.model.builtin.MODELS`;
* ``nets/mynet.py:Net``: ``Net`` in the Python file ``nets/mynet.py``;
* ``mypackage.nets:Net``: ``Net`` in an importable module;
* ``<python object: Net>``: what a run records of a network handed to
  ``Runner(config, network=...)``; such a run is rebuilt by passing the
  network again.

Importable without Paddle.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple, Optional

from ..config.checks import check_choice
from ..errors import UsageError
from .builtin import MODELS

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_NAME = re.compile(_IDENTIFIER)
_PYTHON_OBJECT = re.compile(r"<python object: ([^<>]+)>")
FORMS = "a built-in name (--list-models), FILE.py:NAME or package.module:NAME"


class UserModel(NamedTuple):
    """A network named by ``source:name``; ``kind`` is ``file`` or ``module``."""

    source: str
    name: str
    kind: str


def python_object_label(network) -> str:
    """The ``model`` value recorded for a network built in Python."""
    return f"<python object: {type(network).__name__}>"


def is_python_object(model: str) -> bool:
    """Whether ``model`` is what :func:`python_object_label` records."""
    return isinstance(model, str) and _PYTHON_OBJECT.fullmatch(model) is not None


def parse_user_model(model: str) -> Optional[UserModel]:
    """The parts of ``FILE.py:NAME`` or ``package.module:NAME``; None for a built-in name or a Python object.

    Raises:
        UsageError: ``model`` has a colon but is neither form.
    """
    if not isinstance(model, str) or ":" not in model or is_python_object(model):
        return None
    source, _, name = model.rpartition(":")
    if not _NAME.fullmatch(name):
        raise UsageError(f"model '{model}': '{name}' after the colon is not a Python name; write FILE.py:NAME or package.module:NAME.")
    if source.endswith(".py"):
        return UserModel(source, name, "file")
    if _MODULE.fullmatch(source):
        return UserModel(source, name, "module")
    raise UsageError(f"model '{model}': '{source}' is neither a .py file nor a dotted module name; "
                     f"write FILE.py:NAME or package.module:NAME.")


def is_user_model(model: str) -> bool:
    """Whether ``model`` names a network in a file or a module (spelling checked as :func:`parse_user_model` does)."""
    return parse_user_model(model) is not None


def check_model(model) -> str:
    """``model`` if it is one of the forms this module describes, else UsageError."""
    if not isinstance(model, str) or not model:
        raise UsageError(f"model must be {FORMS}, got {model!r}.")
    if is_python_object(model) or parse_user_model(model) is not None:
        return model
    return check_choice("model", model, sorted(MODELS))


def run_name(model: str, dataset: str) -> str:
    """``<model>-<dataset>``, the folder of a model's runs, with a file or module network named by its NAME."""
    user = parse_user_model(model)
    if user is not None:
        stem = os.path.splitext(os.path.basename(user.source))[0] if user.kind == "file" else user.source
        return f"{stem}.{user.name}-{dataset}"
    match = _PYTHON_OBJECT.fullmatch(model) if isinstance(model, str) else None
    if match:
        return f"{re.sub(r'[^A-Za-z0-9_.]', '_', match.group(1))}-{dataset}"
    return f"{model}-{dataset}"
