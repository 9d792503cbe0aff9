"""Resizing a whole in-memory dataset once, at load, for ``--image-size``.

Bilinear, with Pillow, one image at a time: done once per run, so its cost
is a small part of the first epoch (and none of the later ones), unlike a
per-batch resize.
"""

from __future__ import annotations

import numpy as np


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` resized to ``[N, C, size, size]`` (bilinear); returned as is when already that size."""
    if images.shape[-2:] == (size, size):
        return images
    from PIL import Image

    out = np.empty((*images.shape[:2], size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):  # a channel at a time: Pillow's "L" mode holds any channel count
            out[i, c] = np.asarray(Image.fromarray(plane).resize((size, size), Image.BILINEAR))
    return out


def resize_dataset(dataset, size: int):
    """``dataset`` (an ImageDataset) with its images resized to ``size`` x ``size``, in place; returns it."""
    dataset.images = resize_images(dataset.images, int(size))
    return dataset
