"""Datasets: names, files, and the in-memory pipeline.

The registry is importable without Paddle; everything that needs Paddle is
loaded on first use, so the CLI can set the thread count before Paddle starts.
"""

from .registry import DATASETS, DatasetSpec, spec_for

_LAZY = {
    "load_dataset": "sources",
    "locate_files": "sources",
    "split_for_validation": "sources",
    "ImageDataset": "pipeline",
    "BatchTransform": "pipeline",
    "make_loader": "pipeline",
    "load_folder": "folder",
    "load_folder_splits": "folder",
    "FolderDataset": "folder",
}

__all__ = ["DATASETS", "DatasetSpec", "spec_for", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
