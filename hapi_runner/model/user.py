"""Networks of the user's own: ``--model FILE.py:NAME`` and ``--model package.module:NAME``.

``NAME`` is a ``paddle.nn.Layer`` subclass or a function returning one. It is
called with the dataset's class count and channel count through whichever
of ``num_classes``/``class_dim`` and ``in_channels``/``num_channels`` its
signature names, and with ``model_kwargs`` for the rest. A file is loaded
by its path under a module name made from that path, so every process of a
launched job, and every later ``evaluate``/``export``, loads the same code.

Every failure is one line naming the file (and the line, for an error raised
inside it): a missing file, a NAME that is not there (with the names that
are), an import error, an object that is not a Layer, an argument the
constructor does not take.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Any, Dict, List

from ..errors import UsageError
from .names import UserModel, parse_user_model

CLASS_ARGS = ("num_classes", "class_dim")
CHANNEL_ARGS = ("in_channels", "num_channels")


def load_module(user: UserModel):
    """The module of ``user``: a file loaded by path, or an imported module."""
    if user.kind == "file":
        return _load_file(user.source)
    try:
        return importlib.import_module(user.source)
    except ModuleNotFoundError as exc:
        if exc.name and user.source.startswith(exc.name):
            raise UsageError(f"model module '{user.source}' cannot be imported (no module named '{exc.name}'); "
                             f"install it, add its folder to PYTHONPATH, or pass --model FILE.py:{user.name}.") from exc
        raise _import_failure(user.source, exc, None) from exc
    except Exception as exc:  # the user's code may raise anything while it is imported
        raise _import_failure(user.source, exc, None) from exc


def check_model_file(model: str) -> None:
    """UsageError if ``model`` is ``FILE.py:NAME`` and FILE.py is not a file: checked before any data is read or downloaded."""
    user = parse_user_model(model)
    if user is not None and user.kind == "file":
        _require_file(user.source)


def _require_file(source: str) -> None:
    if not os.path.isfile(source):
        what = "is a folder" if os.path.isdir(source) else "does not exist"
        raise UsageError(f"model file '{source}' {what}; pass --model FILE.py:NAME with the path of a Python file "
                         f"(the networks the guide names are in the repository's examples/ folder).")


def _load_file(source: str):
    _require_file(source)
    path = os.path.abspath(source)
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    module_name = f"hapi_runner_user_{stem}_{digest}"
    try:
        with open(path, "rb") as fh:
            source_bytes = fh.read()
    except OSError as exc:
        raise UsageError(f"model file '{source}' cannot be read ({exc.strerror}); check its permissions.") from exc
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(module_name, path))
    sys.modules[module_name] = module  # dataclasses and pickle look classes up there
    try:
        # Compiled here rather than by the loader, which would leave a __pycache__ folder beside the user's file.
        exec(compile(source_bytes, path, "exec"), module.__dict__)
    except Exception as exc:  # the user's code may raise anything while it is imported
        del sys.modules[module_name]
        raise _import_failure(source, exc, path) from exc
    return module


def _import_failure(source: str, exc: BaseException, path) -> UsageError:
    """One line for an exception raised while importing ``source``: what, and the file and line it came from."""
    where = _where(exc, path)
    message = " ".join(str(exc).split()) or type(exc).__name__
    return UsageError(f"model '{source}' fails to import: {type(exc).__name__}: {message}{where}; fix the file and run again.")


def _where(exc: BaseException, path) -> str:
    """`` (at FILE:LINE)``: the innermost frame in ``path`` (any frame outside importlib for a module)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if (path is None and not f.filename.startswith("<frozen")) or (path is not None and os.path.abspath(f.filename) == path)]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def resolve(user: UserModel):
    """The class or function ``user`` names; UsageError listing what the module has when NAME is not there."""
    import paddle

    module = load_module(user)
    obj = getattr(module, user.name, None)
    if obj is None:
        found = candidates(module)
        listed = ", ".join(found) if found else "none"
        raise UsageError(f"'{user.source}' has no '{user.name}'; its Layer classes and functions: {listed}. "
                         f"Pass --model {user.source}:ONE_OF_THEM.")
    if inspect.isclass(obj) and not issubclass(obj, paddle.nn.Layer):
        raise UsageError(f"{user.source}:{user.name} is a class that is not a paddle.nn.Layer; "
                         f"name a Layer subclass or a function that returns one.")
    if not callable(obj) or isinstance(obj, paddle.nn.Layer):
        raise UsageError(f"{user.source}:{user.name} is a {type(obj).__name__}, not a paddle.nn.Layer subclass or a function "
                         f"returning one; name the class (or factory), not an instance.")
    return obj


def candidates(module) -> List[str]:
    """The Layer subclasses and the functions defined in ``module``, sorted."""
    import paddle

    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if (inspect.isclass(value) and issubclass(value, paddle.nn.Layer)) or inspect.isfunction(value):
            names.append(name)
    return sorted(names)


def call_arguments(obj, label: str, num_classes: int, channels: int, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The keyword arguments ``obj`` is called with: the data's counts where its signature asks, then ``kwargs``."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # a builtin without a signature: pass the user's arguments alone
        return dict(kwargs)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in named and not takes_any]
    if unknown:
        raise UsageError(f"{label} takes no argument '{unknown[0]}' (--model-kwargs); it takes: {', '.join(named) or 'none'}.")
    args: Dict[str, Any] = {}
    for names, value in ((CLASS_ARGS, num_classes), (CHANNEL_ARGS, channels)):
        for name in names:
            if name in named:
                args[name] = value
    args.update(kwargs)
    return args


def build_user_network(model: str, num_classes: int, channels: int, kwargs: Dict[str, Any]):
    """Builds the network ``model`` (``FILE.py:NAME`` or ``package.module:NAME``) for the data.

    Args:
        model: the ``model`` setting.
        num_classes: the dataset's classes, passed as ``num_classes`` or ``class_dim``.
        channels: the image channels, passed as ``in_channels`` or ``num_channels``.
        kwargs: ``model_kwargs``; a key the constructor does not take is an error.

    Returns:
        The ``paddle.nn.Layer``.

    Raises:
        UsageError: the file, NAME, an argument or the object is wrong (one line each).
    """
    import paddle

    user = parse_user_model(model)
    obj = resolve(user)
    args = call_arguments(obj, model, num_classes, channels, kwargs)
    try:
        network = obj(**args)
    except Exception as exc:  # the user's constructor may raise anything
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        path = os.path.abspath(user.source) if user.kind == "file" else None
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"{model}({shown}) failed: {type(exc).__name__}: {message}{_where(exc, path)}; "
                         f"pass what it needs with --model-kwargs KEY=VALUE.") from exc
    if not isinstance(network, paddle.nn.Layer):
        raise UsageError(f"{model}({', '.join(args)}) returned a {type(network).__name__}, not a paddle.nn.Layer; "
                         f"return the network from the function.")
    return network
