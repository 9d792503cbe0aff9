"""In-memory image datasets and the batched input pipeline.

Images stay in memory as uint8 ``[N, C, H, W]``. Padding, augmentation and
normalisation run on whole batches with numpy inside the DataLoader's
``collate_fn``, which is much cheaper per image than Paddle's per-sample
transforms (and needs no OpenCV; about 7x ``paddle.vision.transforms`` per
core, docs/benchmarks.md). ``make_loader(pipeline="per-sample")`` keeps the
old shape of things, the same transform applied to one image at a time in
``Dataset.__getitem__``, for comparison and for datasets that need it. Random
state is a function of ``(seed, epoch, worker)``, so a resumed run sees the
same augmentation as an uninterrupted one.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from paddle.io import Dataset, DistributedBatchSampler

from ..config.checks import check_choice
from .mixing import MixingCollate
from .registry import AUGMENTATIONS, PIPELINES
from .transform_base import TransformBase

# The label of an evaluation filler (see eval_batch_sampler): paddle.nn.CrossEntropyLoss's default ignore_index.
FILLER_LABEL = -100


class BatchTransform(TransformBase):
    """uint8 ``[B, C, H, W]`` in, normalised float32 ``[B, C, S, S]`` out.

    Args:
        mean, std: per-channel statistics on the 0-1 scale.
        out_size: side of the output; smaller inputs are zero-padded around
            the centre (MNIST's 28 to VGG's 32). Defaults to the input side.
        augment: ``none``; ``flip`` (random horizontal flip); or
            ``crop-flip`` (pad 4, random crop, random horizontal flip: the
            usual Cifar recipe). Defaults to ``none``.
        seed: base of the random state. Defaults to 0.
        randaugment: a :class:`hapi_runner.datasets.randaugment.RandAugment`
            run on the uint8 images before the crop and flip. Defaults to None.
        erasing: a :class:`hapi_runner.datasets.erasing.RandomErasing` run on
            the normalised batch. Defaults to None.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], out_size: Optional[int] = None,
                 augment: str = "none", seed: int = 0, *, randaugment=None, erasing=None):
        check_choice("augment", augment, AUGMENTATIONS)
        self.out_size = out_size
        self.augment = augment
        self.randaugment = randaugment
        self.erasing = erasing
        self._start(mean, std, seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = self._pad_to_size(images)
        if self.randaugment is not None:
            images = self.randaugment(images, self.rng)
        if self.augment == "crop-flip":
            images = self._crop_flip(images)
        elif self.augment == "flip":
            images = self._flip(images)
        images = images.astype(np.float32) * self.scale + self.shift
        return images if self.erasing is None else self.erasing(images, self.rng)

    def _pad_to_size(self, images: np.ndarray) -> np.ndarray:
        size = images.shape[-1]
        if self.out_size is None or self.out_size == size:
            return images
        before = (self.out_size - size) // 2
        after = self.out_size - size - before
        return np.pad(images, ((0, 0), (0, 0), (before, after), (before, after)))

    def _flip(self, images: np.ndarray) -> np.ndarray:
        flips = self.rng.random(images.shape[0]) < 0.5
        return np.where(flips[:, None, None, None], images[..., ::-1], images)

    def _crop_flip(self, images: np.ndarray, pad: int = 4) -> np.ndarray:
        batch, _, height, width = images.shape
        padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        tops = self.rng.integers(0, 2 * pad + 1, size=batch)
        lefts = self.rng.integers(0, 2 * pad + 1, size=batch)
        flips = self.rng.random(batch) < 0.5
        # Gather every crop at once: row and column indices per sample.
        rows = (tops[:, None] + np.arange(height)[None, :])[:, None, :, None]
        cols = lefts[:, None] + np.arange(width)[None, :]
        cols = np.where(flips[:, None], cols[:, ::-1], cols)[:, None, None, :]
        return padded[np.arange(batch)[:, None, None, None], np.arange(padded.shape[1])[None, :, None, None], rows, cols]


class ImageDataset(Dataset):
    """A labelled image set held in memory (a ``paddle.io.Dataset``).

    Indexing returns one transformed sample ``(float32 [C, S, S], int64 [1])``,
    so the object also works with ``paddle.Model.fit`` directly; hapi_runner
    itself feeds whole batches through :func:`make_loader`.

    Attributes:
        images: uint8 ``[N, C, H, W]``.
        labels: int64 ``[N]``.
        class_names: one name per class.
        spec: the :class:`DatasetSpec` it came from.
        transform: the :class:`BatchTransform` applied to its samples.
        synthetic: True for random data.
    """

    def __init__(self, images, labels, class_names, spec, transform: BatchTransform, synthetic: bool = False):
        super().__init__()
        self.images = images
        self.labels = labels.astype(np.int64)
        self.class_names = list(class_names)
        self.spec = spec
        self.transform = transform
        self.synthetic = synthetic

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        image = self.transform(self.images[index:index + 1])[0]
        return image, self.labels[index:index + 1]

    @property
    def sample_shape(self):
        """``[C, S, S]`` as the model sees it, after padding."""
        size = self.transform.out_size or self.images.shape[-1]
        return [int(self.images.shape[1]), int(size), int(size)]

    def subset(self, indices, transform: Optional[BatchTransform] = None) -> "ImageDataset":
        return ImageDataset(self.images[indices], self.labels[indices], self.class_names, self.spec,
                            transform or self.transform, self.synthetic)


class _View(Dataset):
    """A DataLoader's view of an ImageDataset: same length, items decided by the subclass."""

    def __init__(self, dataset: ImageDataset):
        super().__init__()
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)


class _RawView(_View):
    """Indices only: the batched collate gathers and transforms the uint8 images itself."""

    def __getitem__(self, index):
        return index


class _BatchCollate:
    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __call__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        fillers = index >= len(self.dataset)
        if fillers.any():  # evaluation slots past the end (see eval_batch_sampler): any image, a label losses skip
            index = np.where(fillers, 0, index)
        images = self.dataset.transform(self.dataset.images[index])
        labels = np.where(fillers, FILLER_LABEL, self.dataset.labels[index])
        return [images, labels.reshape(-1, 1)]


class _SampleView(_View):
    """The per-sample pipeline: each item transformed on its own, as ``paddle.vision`` datasets do."""

    def __getitem__(self, index):
        if index >= len(self.dataset):  # an evaluation filler (see eval_batch_sampler)
            image, _ = self.dataset[0]
            return image, np.array([FILLER_LABEL], dtype=np.int64)
        return self.dataset[index]


class _SampleCollate:
    """Paddle's default collate (stacks the samples), holding the dataset so its transform can be re-seeded."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __call__(self, samples):
        from paddle.io.dataloader.collate import default_collate_fn

        return default_collate_fn(samples)


def make_loader(dataset: ImageDataset, batch_size: int, shuffle: bool, *, num_workers: int = 0,
                drop_last: bool = False, evaluation: bool = False, pipeline: str = "batched",
                prefetch_factor: int = 2, persistent_workers: bool = False, use_shared_memory: bool = True,
                mixing=None):
    """A ``paddle.io.DataLoader`` over an in-memory dataset.

    Uses ``DistributedBatchSampler``, so each rank of a distributed run reads
    its own share; with one process it is a plain (shuffled) batch sampler.
    In the ``batched`` pipeline the sampler only produces indices and the
    collate function gathers the uint8 images and transforms them as one
    array; ``per-sample`` applies the same transform to one image at a time
    in ``Dataset.__getitem__`` and stacks them with Paddle's default collate
    (the draws differ, their distribution does not).

    Args:
        evaluation: every sample exactly once over all ranks
            (:func:`eval_batch_sampler`); ``shuffle`` and ``drop_last`` must
            then be off. Defaults to False.
        pipeline: ``batched`` or ``per-sample``. Defaults to ``batched``.
        prefetch_factor, persistent_workers, use_shared_memory: passed to
            ``paddle.io.DataLoader`` (they matter only with workers). Persistent
            workers keep the random state they had, so augmentation is no
            longer a function of the epoch. Default to 2, False, True.
        mixing: a :class:`hapi_runner.datasets.mixing.BatchMixing` for a
            training loader: batches then carry float32 ``[N, classes]`` soft
            targets instead of int64 ``[N, 1]`` labels. Seeded with the
            transform's seed. Defaults to None.
    """
    check_choice("pipeline", pipeline, PIPELINES)
    raw = _RawView(dataset) if pipeline == "batched" else _SampleView(dataset)
    if evaluation:
        if shuffle or drop_last:
            raise ValueError("make_loader: evaluation=True reads every sample once in order; pass shuffle=False, drop_last=False.")
        sampler = eval_batch_sampler(len(dataset), batch_size)
    else:
        sampler = DistributedBatchSampler(raw, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    transform = dataset.transform

    def reseed_worker(worker_id: int) -> None:
        # Each worker process holds a copy of the transform; without a reseed
        # they would all draw the same crops.
        transform.set_epoch(transform.epoch, worker_id + 1)

    from .robust_loader import RobustDataLoader  # falls back when worker processes die (small /dev/shm)

    collate = _BatchCollate(dataset) if pipeline == "batched" else _SampleCollate(dataset)
    if mixing is not None:
        if evaluation:
            raise ValueError("make_loader: mixing is for training batches; an evaluation loader takes mixing=None.")
        collate = MixingCollate(collate, mixing, seed=transform.seed)
    return RobustDataLoader(raw, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                            worker_init_fn=reseed_worker if num_workers else None, return_list=True,
                            prefetch_factor=prefetch_factor, persistent_workers=bool(persistent_workers and num_workers),
                            use_shared_memory=use_shared_memory)


def eval_batch_sampler(num_samples: int, batch_size: int, num_replicas: Optional[int] = None,
                       rank: Optional[int] = None) -> DistributedBatchSampler:
    """Evaluation batches for one rank: every sample once over all ranks, in ``DistributedBatchSampler``'s layout.

    ``DistributedBatchSampler`` makes the sample count a multiple of the
    ranks by repeating the first samples at the end, so every rank runs the
    same batches (hapi gathers each batch's predictions from all ranks, which
    needs equal shapes). Here the sampler is given ``num_samples`` rounded up
    to that multiple instead: the slots past the end hold indices
    ``>= num_samples``, which the loader's collate turns into fillers labelled
    :data:`FILLER_LABEL`. The layout is the one hapi expects: the gathered
    batches are the indices in order, with the fillers last, so hapi's cut of
    the gathered tail to the dataset's length drops exactly the fillers from
    the metrics, and the loss skips them by their label. (hapi makes that cut
    only for a ``paddle.io.DataLoader`` whose ``dataset`` has the real length,
    as :func:`make_loader`'s has.)

    Args:
        num_samples: the evaluation set's size.
        batch_size: per rank.
        num_replicas, rank: Default to the launched job's (1 and 0 alone).
    """
    from paddle.distributed import ParallelEnv

    ranks = num_replicas or ParallelEnv().nranks
    slots = -(-num_samples // ranks) * ranks
    return DistributedBatchSampler(range(slots), batch_size=batch_size, num_replicas=num_replicas, rank=rank)
