"""Training and evaluation crops of decoded images, normalised per batch: the folder datasets' transform.

Input: a list of uint8 ``[H, W, C]`` images of any size (the cache's, short
side ``resize_short``); output: float32 ``[B, C, S, S]``. Training is the
random resized crop of torchvision and timm (area scale ``(0.08, 1)``, aspect
ratio ``(3/4, 4/3)``, ten tries, then the centre crop of the clamped ratio)
and a horizontal flip with probability 1/2; evaluation resizes the short side
to ``S / crop_pct`` (256 for 224: timm's ``crop_pct`` 0.875, PaddleClas'
``ResizeImage resize_short 256`` + ``CropImage 224``) and takes the centre
``S x S``. A crop is resized by Pillow (antialiased bilinear, in C: about 7x
a numpy bilinear gather per image here); the random draws are made for the
whole batch from a state that is a function of ``(seed, epoch, worker)``, as
:class:`~hapi_runner.datasets.pipeline.BatchTransform`'s, and the
normalisation is one multiply-add over the batch.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from .transform_base import TransformBase

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_PCT = 0.875
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
_TRIES = 10


def resize_short_for(size: int, crop_pct: float = CROP_PCT) -> int:
    """The short side evaluation resizes to before its centre crop: ``floor(size / crop_pct)`` (256 for 224)."""
    return int(math.floor(size / crop_pct + 1e-9))


def imagenet_stats(channels: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """ImageNet's mean and std (0-1 scale); for one channel, the luma-weighted grey equivalent."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    weights = np.array([0.299, 0.587, 0.114])
    return (float(weights @ IMAGENET_MEAN),), (float(weights @ IMAGENET_STD),)


def stats_from_sums(stats: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Mean and std (0-1 scale) per channel from per-image ``[sums, sums of squares, pixel count]`` rows."""
    channels = (stats.shape[1] - 1) // 2
    total = stats.sum(axis=0)
    mean = total[:channels] / total[-1]
    var = np.maximum(total[channels:2 * channels] / total[-1] - mean * mean, 0.0)
    return tuple(float(m / 255.0) for m in mean), tuple(float(max(math.sqrt(v), 1e-3) / 255.0) for v in var)


def centre_box(height: int, width: int, crop: float) -> Tuple[int, int]:
    """Top and left of a centred ``crop`` (torchvision's rounding)."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


class CropTransform(TransformBase):
    """List of uint8 ``[H, W, C]`` images in, normalised float32 ``[B, C, S, S]`` out.

    Args:
        mean, std: per-channel statistics on the 0-1 scale.
        size: the output side ``S``.
        channels: 1 or 3.
        train: random resized crop and flip when True, resize-short and
            centre crop when False. Defaults to False.
        crop_pct: evaluation's crop over its resized short side. Defaults to 0.875.
        stored_short: the short side of the images it is given. Defaults to
            ``floor(size / crop_pct)``, where the evaluation crop needs no resize.
        seed: base of the random state. Defaults to 0.

    Attributes:
        randaugment, erasing: as :class:`~hapi_runner.datasets.pipeline.BatchTransform`'s, set on a
            training transform (RandAugment on the uint8 crops, Random Erasing on the normalised batch);
            None by default and in :meth:`evaluation`.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int, channels: int, *, train: bool = False,
                 crop_pct: float = CROP_PCT, stored_short: int = 0, seed: int = 0):
        self.mean, self.std = tuple(mean), tuple(std)
        self.out_size = size
        self.channels = channels
        self.train = train
        self.crop_pct = crop_pct
        self.resize_short = resize_short_for(size, crop_pct)
        self.stored_short = stored_short or self.resize_short
        self.randaugment = None
        self.erasing = None
        self._start(mean, std, seed)

    def evaluation(self) -> "CropTransform":
        """The same statistics and sizes without augmentation."""
        return CropTransform(self.mean, self.std, self.out_size, self.channels, train=False, crop_pct=self.crop_pct,
                             stored_short=self.stored_short, seed=self.seed)

    def preprocessing(self) -> Dict[str, object]:
        """How evaluation prepares an image, for an export's sidecar (``predict`` and inference users repeat it)."""
        return {"resize_short": self.resize_short, "crop": self.out_size, "crop_pct": self.crop_pct,
                "interpolation": "bilinear", "mean": list(self.mean), "std": list(self.std),
                "channels": self.channels, "color": "RGB" if self.channels == 3 else "L",
                "scale": "pixel / 255, then (x - mean) / std", "layout": "NCHW"}

    def crop_boxes(self, shapes: np.ndarray) -> np.ndarray:
        """``[B, 4]`` (top, left, height, width) random resized crops of images of ``shapes`` ``[B, 2]``."""
        heights, widths = shapes[:, 0].astype(np.float64), shapes[:, 1].astype(np.float64)
        count = len(shapes)
        area = (heights * widths)[:, None] * self.rng.uniform(SCALE[0], SCALE[1], size=(count, _TRIES))
        ratio = np.exp(self.rng.uniform(math.log(RATIO[0]), math.log(RATIO[1]), size=(count, _TRIES)))
        w = np.round(np.sqrt(area * ratio))
        h = np.round(np.sqrt(area / ratio))
        ok = (w > 0) & (h > 0) & (w <= widths[:, None]) & (h <= heights[:, None])
        first = np.argmax(ok, axis=1)
        rows = np.arange(count)
        w, h = w[rows, first], h[rows, first]
        u_top, u_left = self.rng.random(count), self.rng.random(count)
        top = np.floor(u_top * (heights - h + 1))
        left = np.floor(u_left * (widths - w + 1))
        fallback = ~ok.any(axis=1)
        if fallback.any():
            in_ratio = widths / heights
            fw = np.where(in_ratio < RATIO[0], widths, np.where(in_ratio > RATIO[1], np.round(heights * RATIO[1]), widths))
            fh = np.where(in_ratio < RATIO[0], np.round(widths / RATIO[0]), heights)
            w, h = np.where(fallback, fw, w), np.where(fallback, fh, h)
            top = np.where(fallback, np.floor((heights - h) / 2), top)
            left = np.where(fallback, np.floor((widths - w) / 2), left)
        return np.stack([top, left, h, w], axis=1).astype(np.int64)

    def _resized(self, image: np.ndarray, box: Tuple[float, float, float, float]) -> np.ndarray:
        size = self.out_size
        pil = Image.fromarray(image[:, :, 0] if self.channels == 1 else image)
        out = np.asarray(pil.resize((size, size), Image.BILINEAR, box=box))
        return out.reshape(size, size, self.channels)

    def _eval_crop(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        size = self.out_size
        if self.stored_short == self.resize_short:
            top, left = centre_box(height, width, size)
            return image[top:top + size, left:left + size]
        side = size * self.stored_short / self.resize_short  # the centre crop, in the stored image's pixels
        top, left = (height - side) / 2.0, (width - side) / 2.0
        return self._resized(image, (left, top, left + side, top + side))

    def crops(self, images: List[np.ndarray]) -> np.ndarray:
        """uint8 ``[B, S, S, C]``: each image cropped (and flipped, in training)."""
        size = self.out_size
        out = np.empty((len(images), size, size, self.channels), dtype=np.uint8)
        if not self.train:
            for k, image in enumerate(images):
                out[k] = self._eval_crop(image)
            return out
        boxes = self.crop_boxes(np.array([image.shape[:2] for image in images]).reshape(-1, 2))
        for k, (image, (top, left, h, w)) in enumerate(zip(images, boxes)):
            out[k] = self._resized(image, (int(left), int(top), int(left + w), int(top + h)))
        flips = self.rng.random(len(images)) < 0.5
        out[flips] = out[flips, :, ::-1]
        return out

    def __call__(self, images) -> np.ndarray:
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        crops = self.crops(list(images)).transpose(0, 3, 1, 2)
        if self.randaugment is not None:
            crops = self.randaugment(np.ascontiguousarray(crops), self.rng)
        result = np.empty((crops.shape[0], self.channels, self.out_size, self.out_size), dtype=np.float32)
        np.multiply(crops, self.scale, out=result)
        result += self.shift
        return result if self.erasing is None else self.erasing(result, self.rng)


def from_preprocessing(preprocessing: Dict[str, object]) -> CropTransform:
    """The evaluation transform an export's sidecar records (:meth:`CropTransform.preprocessing`)."""
    return CropTransform(preprocessing["mean"], preprocessing["std"], int(preprocessing["crop"]),
                         int(preprocessing["channels"]), train=False, crop_pct=float(preprocessing["crop_pct"]))


def to_short_side(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 ``[H, W, C]`` resized (antialiased bilinear) so its short side is ``side``, as decoding does; unchanged if it is."""
    height, width, channels = image.shape
    if min(height, width) == side:
        return image
    pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    width, height = (side, max(1, int(side * height / width))) if width <= height else (max(1, int(side * width / height)), side)
    return np.asarray(pil.resize((width, height), Image.BILINEAR)).reshape(height, width, channels)
