"""Random Erasing on the normalised float batch, one box per image, all images at once.

timm's ``RandomErasing`` with ``mode='pixel'`` and one box: with
probability ``prob`` an image gets a box of area ``U(0.02, 1/3)`` of the
image and aspect ratio ``exp(U(log 0.3, log 3.3))``, placed uniformly,
filled with per-pixel standard normal noise (on the normalised scale, so
it looks like the data's own spread). As in timm, up to 10 boxes are drawn
per image and the first that fits is used; an image where none fits is left
as it is.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

ATTEMPTS = 10


class RandomErasing:
    """Random Erasing of a float batch ``[B, C, H, W]``.

    Args:
        prob: probability that an image is erased.
        area: range of the box's area as a fraction of the image. Defaults to (0.02, 1/3).
        log_ratio: range of the box's aspect ratio (height / width). Defaults to (0.3, 3.3).
    """

    def __init__(self, prob: float, area: Tuple[float, float] = (0.02, 1 / 3),
                 log_ratio: Tuple[float, float] = (0.3, 3.3)):
        self.prob = float(prob)
        self.area = (float(area[0]), float(area[1]))
        self.log_ratio = (math.log(log_ratio[0]), math.log(log_ratio[1]))

    def boxes(self, batch: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """``[B, 4]`` int boxes ``(top, left, h, w)``; ``h = w = 0`` for an image left alone."""
        chosen = rng.random(batch) < self.prob
        target = rng.uniform(*self.area, size=(batch, ATTEMPTS)) * height * width
        ratio = np.exp(rng.uniform(*self.log_ratio, size=(batch, ATTEMPTS)))
        box_h = np.rint(np.sqrt(target * ratio)).astype(np.int64)
        box_w = np.rint(np.sqrt(target / ratio)).astype(np.int64)
        fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
        first = fits.argmax(axis=1)
        rows = np.arange(batch)
        use = chosen & fits[rows, first]
        box_h = np.where(use, box_h[rows, first], 0)
        box_w = np.where(use, box_w[rows, first], 0)
        # Uniform over every position that keeps the box inside, both ends included (timm's randint).
        top = np.floor(rng.random(batch) * (height - box_h + 1)).astype(np.int64)
        left = np.floor(rng.random(batch) * (width - box_w + 1)).astype(np.int64)
        return np.stack([top, left, box_h, box_w], axis=1)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        batch, _, height, width = images.shape
        if self.prob <= 0:
            return images
        boxes = self.boxes(batch, height, width, rng)
        rows = np.arange(height)[None, :, None]
        cols = np.arange(width)[None, None, :]
        top, left, box_h, box_w = (boxes[:, k, None, None] for k in range(4))
        mask = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
        noise = rng.standard_normal(images.shape, dtype=np.float32)
        return np.where(mask[:, None], noise, images).astype(images.dtype, copy=False)
