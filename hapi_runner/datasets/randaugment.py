"""RandAugment on uint8 images, one image at a time (the operations differ per image).

Each image gets ``num_ops`` operations (2 by default) drawn uniformly with
replacement from :data:`OPS`, each applied with probability ``op_prob``
(0.5, as timm's ``rand-m*`` policies do), at magnitude ``M`` on timm's 0-10
scale. The magnitudes follow timm's *increasing* mapping (its ``rand-inc``
policies): every operation that has a magnitude is the identity at 0 and
strongest at 10, with a random sign where the operation has a direction:

- rotate: up to 30 degrees; shear: up to 0.3; translate: up to 45 % of the side;
- color, contrast, brightness, sharpness: enhancement factor ``1 +- 0.9 M / 10``;
- solarize: threshold ``256 - 25.6 M`` (pixels at or above it are inverted);
- posterize: keeps ``8 - int(0.4 M)`` bits (8 to 4);
- identity, autocontrast, equalize: no magnitude.

M is capped at 10: beyond it the geometric ranges leave what timm's
policies use (timm clips at 10 unless its ``mmax`` is raised), and
posterize and the enhancements run out of range. Geometric operations fill
uncovered pixels with ``fill`` (0: the black background of the MNIST-like
sets; timm fills with the dataset mean).
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ..errors import UsageError

MAX_MAGNITUDE = 10.0


def _signed(value: float, rng: np.random.Generator) -> float:
    return value if rng.random() < 0.5 else -value


def _affine(image: Image.Image, coefficients, fill: int) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, coefficients, resample=Image.BILINEAR, fillcolor=_fill(image, fill))


def _fill(image: Image.Image, fill: int):
    return fill if image.mode == "L" else (fill,) * len(image.getbands())


def _identity(image, level, rng, fill):
    return image


def _autocontrast(image, level, rng, fill):
    return ImageOps.autocontrast(image)


def _equalize(image, level, rng, fill):
    return ImageOps.equalize(image)


def _rotate(image, level, rng, fill):
    return image.rotate(_signed(30.0 * level, rng), resample=Image.BILINEAR, fillcolor=_fill(image, fill))


def _solarize(image, level, rng, fill):
    return ImageOps.solarize(image, threshold=int(round(256 - 256 * level)))


def _posterize(image, level, rng, fill):
    return ImageOps.posterize(image, 8 - int(4 * level))


def _enhancer(kind) -> Callable:
    def apply(image, level, rng, fill):
        return kind(image).enhance(1.0 + _signed(0.9 * level, rng))

    return apply


def _shear(axis: int) -> Callable:
    def apply(image, level, rng, fill):
        factor = _signed(0.3 * level, rng)
        return _affine(image, (1, factor, 0, 0, 1, 0) if axis == 0 else (1, 0, 0, factor, 1, 0), fill)

    return apply


def _translate(axis: int) -> Callable:
    def apply(image, level, rng, fill):
        pixels = _signed(0.45 * level * image.size[axis], rng)
        return _affine(image, (1, 0, pixels, 0, 1, 0) if axis == 0 else (1, 0, 0, 0, 1, pixels), fill)

    return apply


# name -> op(image, level in [0, 1], rng, fill). The order fixes what a seed draws: append, never reorder.
OPS: Dict[str, Callable] = {
    "identity": _identity,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "rotate": _rotate,
    "solarize": _solarize,
    "color": _enhancer(ImageEnhance.Color),
    "posterize": _posterize,
    "contrast": _enhancer(ImageEnhance.Contrast),
    "brightness": _enhancer(ImageEnhance.Brightness),
    "sharpness": _enhancer(ImageEnhance.Sharpness),
    "shear_x": _shear(0),
    "shear_y": _shear(1),
    "translate_x": _translate(0),
    "translate_y": _translate(1),
}


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 ``[C, H, W]`` (C 1 or 3) to a Pillow image."""
    return Image.fromarray(image[0]) if image.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))


def from_pil(image: Image.Image, channels: int) -> np.ndarray:
    """A Pillow image back to uint8 ``[C, H, W]``."""
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def apply_op(name: str, image: np.ndarray, magnitude: float, rng: np.random.Generator, fill: int = 0) -> np.ndarray:
    """One named operation on one uint8 ``[C, H, W]`` image, at ``magnitude`` on the 0-10 scale."""
    result = OPS[name](to_pil(image), magnitude / MAX_MAGNITUDE, rng, fill)
    return from_pil(result, image.shape[0])


class RandAugment:
    """RandAugment of a uint8 batch ``[B, C, H, W]``, per image.

    Args:
        magnitude: M on the 0-10 scale.
        num_ops: operations per image. Defaults to 2.
        op_prob: probability that a drawn operation is applied. Defaults to 0.5.
        ops: names from :data:`OPS` to draw from. Defaults to all of them.
        fill: the value of pixels a geometric operation uncovers. Defaults to 0.
    """

    def __init__(self, magnitude: float, num_ops: int = 2, op_prob: float = 0.5,
                 ops: Sequence[str] = tuple(OPS), fill: int = 0):
        unknown = [name for name in ops if name not in OPS]
        if unknown or not ops:
            raise UsageError(f"RandAugment ops must be among {', '.join(OPS)}; got {list(ops)!r}.")
        self.magnitude = float(magnitude)
        self.num_ops = int(num_ops)
        self.op_prob = float(op_prob)
        self.ops = list(ops)
        self.fill = int(fill)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = images.copy()
        batch = images.shape[0]
        # Drawn for the whole batch up front, so the ops' own draws (signs) come after in a fixed order.
        choices = rng.integers(0, len(self.ops), size=(batch, self.num_ops))
        applied = rng.random((batch, self.num_ops)) < self.op_prob
        for i in range(batch):
            for choice, on in zip(choices[i], applied[i]):
                if on:
                    out[i] = apply_op(self.ops[choice], out[i], self.magnitude, rng, self.fill)
        return out
