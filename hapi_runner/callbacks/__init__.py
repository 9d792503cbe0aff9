"""hapi_runner's callbacks: subclasses of ``paddle.callbacks.Callback``, one per module."""

from .history import History

__all__ = ["History"]
