"""hapi_runner: train paddle.vision models with paddle.Model in one command or a few lines.

    >>> import hapi_runner
    >>> results = hapi_runner.Runner(hapi_runner.TrainConfig(epochs=2)).fit()

Importing this package does not import Paddle: the CPU thread count has to
be set before Paddle loads, and the Runner does that first. The names below
that need Paddle are loaded on first use.
"""

__version__ = "0.1.0"

from .config import TrainConfig  # noqa: E402  (Paddle-free)
from .errors import DataFileError, HapiRunnerError, UsageError  # noqa: E402
from .training.console import silence_noise  # noqa: E402

silence_noise()  # before Paddle is imported, whose import warns about ccache

_LAZY = {
    "Runner": "training.runner",
    "build_datasets": "training.runner",
    "build_model": "model.builtin",
    "load_pretrained": "model.builtin",
    "MODELS": "model.builtin",
    "build_optimizer": "training.optim",
    "load_dataset": "datasets",
    "DATASETS": "datasets",
    "summarize": "model.summary",
    "InferenceModel": "deploy",
    "callbacks": None,
    "deploy": None,
}

__all__ = ["TrainConfig", "HapiRunnerError", "UsageError", "DataFileError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name = _LAZY[name]
        if module_name is None:
            return importlib.import_module(f".{name}", __name__)
        return getattr(importlib.import_module(f".{module_name}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
