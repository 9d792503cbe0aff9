"""Reading one image file with Pillow into a uint8 ``[H, W, C]`` array at the resolution training needs.

Every image is brought to a short side of ``side`` pixels (the long side
keeps the aspect ratio, truncated as torchvision's ``Resize`` truncates it),
after three steps that make files of any kind look alike: the EXIF
orientation is applied (a phone photo taken upright is upright), images with
an alpha channel are composited on white (a transparent background is white
in the viewers people check their data with, not the black that dropping the
alpha channel would leave), and the mode becomes ``L`` for one channel or
``RGB`` for three. A JPEG much larger than needed is decoded at a reduced
scale by libjpeg itself (Pillow's ``draft``: 1/2, 1/4 or 1/8 of the DCT): a
1600x1200 photo destined for 341x256 comes out at 400x300, for about half the
time of a full decode (the entropy decoding of the whole file remains; the
inverse DCT, colour conversion and resize shrink 16-fold). The result is never
smaller than ``side``, and the final resize is Pillow's antialiased bilinear.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from PIL import Image, ImageOps

# File name endings read as images (compared in lower case); everything else in a class folder is ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# EXIF orientations that turn the picture by 90 or 270 degrees, swapping width and height.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255, 255)

# What a damaged or foreign file raises inside Pillow: unidentified or truncated data, bad headers, short reads.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def is_image_name(name: str) -> bool:
    """Whether a file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def mode_for(channels: int) -> str:
    """Pillow's mode for 1 or 3 channels."""
    return "L" if channels == 1 else "RGB"


def resized_shape(width: int, height: int, side: int) -> Tuple[int, int]:
    """``(width, height)`` scaled so the short side is ``side``; the long side truncated, as torchvision's ``Resize``."""
    if width <= height:
        return side, max(1, int(side * height / width))
    return max(1, int(side * width / height)), side


def probe(path: str, side: int) -> Tuple[int, int]:
    """``(height, width)`` the decoded image will have, from the header alone (no pixels read).

    Raises:
        OSError, ValueError, ...: (:data:`DECODE_ERRORS`) the file is not an image Pillow can read.
    """
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(_EXIF_ORIENTATION, 1) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    out_w, out_h = resized_shape(width, height, side)
    return out_h, out_w


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow's convert clips at 255 instead of scaling.
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
        return image if mode == "L" else image.convert(mode)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    return image.convert(mode)


def open_oriented(path: str, channels: int, side: int) -> Image.Image:
    """The image of ``path``, EXIF orientation applied, in the mode for ``channels``, not yet resized.

    JPEGs are drafted: decoded at the smallest DCT scale that still leaves a short side of ``side``.
    """
    with Image.open(path) as image:
        if image.format == "JPEG":
            width, height = image.size
            # Draft keeps both sides at least the requested ones, so ask for the short side's scale on both.
            scale = side / min(width, height)
            image.draft(mode_for(channels), (max(1, int(width * scale)), max(1, int(height * scale))))
        image.load()
        if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        return _to_mode(image, mode_for(channels))


def decode_image(path: str, channels: int, side: int) -> np.ndarray:
    """uint8 ``[H, W, C]`` of ``path``: oriented, converted, short side ``side`` (see the module's notes).

    Raises:
        OSError, ValueError, ...: (:data:`DECODE_ERRORS`) unreadable, truncated or not an image.
    """
    image = open_oriented(path, channels, side)
    size = resized_shape(image.size[0], image.size[1], side)
    if image.size != size:
        image = image.resize(size, Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)
