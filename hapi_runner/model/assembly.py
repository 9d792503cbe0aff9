"""A config's data and network, built in one place for training, evaluate/export/predict and the report.

:func:`load_data` reads the datasets a :class:`TrainConfig` names (the
built-in ones resized as ``image_size`` asks, a folder through its cache)
and :func:`build_for` builds the network for them; the Runner, a finished
run rebuilt by ``evaluate``/``export`` and the report all go through these
two, so a run is evaluated on exactly the images, sizes and classes it was
trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class RunData:
    """What a config's data is.

    Attributes:
        spec: the :class:`~hapi_runner.datasets.registry.DatasetSpec`:
            classes, channels, statistics (a folder's, read from its images).
        input_size: the side the network is fed.
        train: the training set (augmented as configured), or None when not asked for.
        eval: the evaluation set: the test split, a folder's validation
            images, or the part of train ``val_split`` holds out.
        folder: a folder dataset's :class:`~hapi_runner.datasets.folder.FolderSplits`
            (notes, skipped files, preprocessing), else None.
    """

    spec: Any
    input_size: int
    train: Optional[Any]
    eval: Any
    folder: Optional[Any] = None

    @property
    def input_shape(self) -> list:
        return [self.spec.channels, self.input_size, self.input_size]


def load_data(config, *, training: bool = True, evaluation: bool = True, num_workers: int = 0) -> RunData:
    """Loads the datasets ``config`` names.

    Args:
        config: a :class:`~hapi_runner.config.TrainConfig`.
        training: also load the training set, with its augmentation; False
            loads only what evaluation needs (for ``val_split``, train read
            without augmentation, to hold out the same images). Defaults to True.
        evaluation: load the evaluation set. With neither, a built-in
            dataset reads no file (its spec is enough to build the network);
            a folder is always scanned, since its classes and statistics
            come from its images. Defaults to True.
        num_workers: processes decoding a folder's images. Defaults to 0.
    """
    if config.dataset == "folder":
        from ..datasets.folder import folder_splits_for

        splits = folder_splits_for(config, num_workers)
        return RunData(splits.train.spec, splits.train.spec.size, splits.train, splits.val, splits)
    from ..datasets import spec_for, split_for_validation
    from .build import network_input_size

    spec = spec_for(config.dataset, config.synthetic_like, config.normalize)
    size = network_input_size(config, spec.size)
    if not (training or evaluation):
        return RunData(spec, size, None, None)
    if config.val_split:
        train, held = split_for_validation(load_split(config, "train", size, training and config.augment),
                                           config.val_split, config.seed)
        return RunData(spec, size, train if training else None, held)
    train = load_split(config, "train", size, config.augment) if training else None
    return RunData(spec, size, train, load_split(config, "test", size, False) if evaluation else None)


def load_split(config, split: str, size: int, augment: bool):
    """One split of a built-in dataset, padded or resized to ``size`` as training feeds it."""
    from ..datasets import load_dataset

    mode = config.train_augment if augment else None
    data = load_dataset(config.dataset, split, config.data_dir, augment=augment, augment_mode=mode, out_size=size,
                        seed=config.seed, download=config.download, synthetic_like=config.synthetic_like,
                        synthetic_size=config.synthetic_size, normalize=config.normalize)
    if config.image_size is not None:
        from ..datasets.resize import resize_dataset

        resize_dataset(data, size)
    return data


def build_for(config, data: RunData):
    """The network ``config.model`` names, for ``data``'s classes, channels and input size."""
    from .build import build_network

    return build_network(config, data.spec.num_classes, data.spec.channels, data.input_size)
