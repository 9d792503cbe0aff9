"""Predictions: what a report is told about one evaluation, sample by sample."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import UsageError
from ..training.metrics import check_inputs


@dataclass
class Predictions:
    """Labels, class probabilities and the images of one evaluation pass.

    Args:
        labels: true class indices ``[N]``.
        probs: class probabilities ``[N, C]`` (rows summing to 1).
        images: uint8 ``[N, H, W, C]`` (C = 1 or 3) or ``[N, H, W]``: the
            images as the model saw them before normalisation, for the
            gallery; or a :class:`CroppedImages`, which makes them one at a
            time. None leaves the gallery out. Defaults to None.
        class_names: one name per class. Defaults to ``class_<i>``.
        source: a line saying where the predictions come from, e.g.
            ``checkpoint epoch_3 on the test split``. Defaults to "".
        heatmaps: ``(indices, classes) -> [len(indices), H, W]`` Grad-CAM
            maps of the images (:func:`hapi_runner.deploy.gradcam.dataset_cams`),
            drawn beside each mistake in the gallery. Defaults to None (none drawn).
        files: each sample's image file, as the user would open it (relative
            to ``--data-dir``), for an image folder or list. Defaults to None:
            samples are named by their index.
    """

    labels: np.ndarray
    probs: np.ndarray
    images: Optional[np.ndarray] = None
    class_names: Optional[Sequence[str]] = None
    source: str = ""
    heatmaps: Optional[Callable[[Sequence[int], Sequence[int]], np.ndarray]] = None
    files: Optional[Sequence[str]] = None

    def __post_init__(self):
        self.labels, self.probs = check_inputs(self.labels, self.probs)
        classes = self.probs.shape[1]
        if self.class_names is None:
            self.class_names = [f"class_{i}" for i in range(classes)]
        self.class_names = [str(name) for name in self.class_names]
        if len(self.class_names) != classes:
            raise UsageError(f"{len(self.class_names)} class names for {classes} classes of probabilities; give one name per class.")
        if isinstance(self.images, CroppedImages):
            if len(self.images) != len(self.labels):
                raise UsageError(f"{len(self.images)} images for {len(self.labels)} labels; give one image per label.")
        elif self.images is not None:
            self.images = _check_images(np.asarray(self.images), len(self.labels))
        if self.files is not None and len(self.files) != len(self.labels):
            raise UsageError(f"{len(self.files)} file names for {len(self.labels)} labels; give one file name per label.")

    def name(self, index: int) -> str:
        """How the report names sample ``index``: its file, or ``#index`` for an array dataset."""
        return str(self.files[index]) if self.files is not None else f"#{index}"

    def most_confident_mistakes(self, limit: int) -> np.ndarray:
        """The indices of up to ``limit`` misclassified samples, the most confident first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")][:limit]

    def mistakes(self, limit: int) -> List[Dict[str, Any]]:
        """``image``, ``true``, ``predicted`` and ``probability`` of :meth:`most_confident_mistakes`, for results.json."""
        names = self.class_names
        return [{"image": self.name(int(i)), "true": names[self.labels[i]], "predicted": names[self.predicted[i]],
                 "probability": float(self.confidence[i])} for i in self.most_confident_mistakes(limit)]

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class, per sample."""
        return self.probs.max(axis=1)

    @classmethod
    def from_logits(cls, labels, logits, images=None, class_names=None, source: str = "") -> "Predictions":
        """Predictions from raw network outputs (softmax taken here, in float64)."""
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2:
            raise UsageError(f"logits must be an [N, classes] array, got shape {logits.shape}.")
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return cls(labels, exp / exp.sum(axis=1, keepdims=True), images, class_names, source)

    @classmethod
    def from_dataset(cls, dataset, probs, source: str = "", root: Optional[str] = None) -> "Predictions":
        """Predictions for a hapi_runner ImageDataset, its images shown as its (augmentation-free) transform makes them.

        Built-in datasets hold uint8 ``[N, C, H, W]`` arrays, padded here as
        their transform pads them; image folders hold decoded files of any
        size, cropped one at a time when the gallery shows them, and named
        by their path relative to ``root`` (the ``--data-dir``; default None:
        the paths as the dataset holds them).
        """
        if hasattr(dataset.transform, "crops"):
            images = CroppedImages(dataset)
        else:
            images = model_view(dataset.images, getattr(dataset.transform, "out_size", None))
        files = getattr(dataset, "paths", None)
        if files is not None and root:
            files = [_under(path, root) for path in files]
        return cls(dataset.labels, probs, images, dataset.class_names, source, files=files)


def data_root(config, data_dir: Optional[str] = None) -> Optional[str]:
    """The folder a folder dataset's file names are shown relative to: ``data_dir``, else the run's, else the list's folder."""
    root = data_dir or config.data_dir
    if not root and config.train_list:
        root = os.path.dirname(os.path.abspath(config.train_list))
    return root


def _under(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as it is."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return path if relative.startswith(os.pardir) else relative


class CroppedImages:
    """The images of an image-folder dataset as its evaluation crop makes them, one per access (never all at once).

    Indexing gives uint8 ``[S, S, 3]``, or ``[S, S]`` for grey images.
    """

    def __init__(self, dataset):
        self.images = dataset.images
        transform = dataset.transform
        self.transform = transform.evaluation() if getattr(transform, "train", False) else transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        crop = self.transform.crops([self.images[int(index)]])[0]
        return crop[..., 0] if crop.shape[-1] == 1 else crop


def model_view(images: np.ndarray, out_size: Optional[int] = None) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` to ``[N, H, W, C]`` (``[N, H, W]`` for grey), zero-padded around the centre to ``out_size``."""
    images = np.asarray(images)
    if out_size and images.shape[-1] < out_size:
        before = (out_size - images.shape[-1]) // 2
        after = out_size - images.shape[-1] - before
        images = np.pad(images, ((0, 0), (0, 0), (before, after), (before, after)))
    images = np.transpose(images, (0, 2, 3, 1))
    return images[..., 0] if images.shape[-1] == 1 else images


def _check_images(images: np.ndarray, count: int) -> np.ndarray:
    if images.dtype != np.uint8:
        raise UsageError(f"images must be uint8 pixels (0-255), got {images.dtype}; pass them before normalisation.")
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))
    if not shape_ok or len(images) != count:
        raise UsageError(f"images must be [N, H, W] or [N, H, W, C] with C 1 or 3 and N = {count}, got shape {images.shape}.")
    return images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images
