"""The command line: ``hapi-runner``, ``python -m hapi_runner`` and ``train.py`` (:mod:`.app`)."""

from .app import entry_point, main

__all__ = ["main", "entry_point"]
