"""The images' own size, read from file headers, and a line when the training size is far above it.

A folder of 48-pixel images trained at the default 224 is enlarged almost
five times: a cache twenty times larger, slower steps, and blurry inputs,
all without a word. The scan reads the size of (a sample of) the training
files from their headers, which needs no decoding, and the run says how far
the chosen size is from their median short side, and which ``--image-size``
keeps them as they are.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .image_decode import DECODE_ERRORS

# Files whose headers are read: enough for a steady median, cheap for any folder.
SAMPLE = 256
# Enlarging up to this factor is what a crop of ordinary photographs does anyway (224 from a 200-pixel side);
# beyond it the run says so.
FAR = 1.5


def median_short_side(paths: Sequence[str], sample: int = SAMPLE) -> Optional[int]:
    """The median short side of ``paths``' images (up to ``sample`` of them, evenly spread), or None if none can be read."""
    from PIL import Image

    chosen = [paths[int(i)] for i in np.unique(np.linspace(0, len(paths) - 1, min(sample, len(paths))).astype(int))] if paths else []
    sides = []
    for path in chosen:
        try:
            with Image.open(path) as image:  # the header only: no pixel is decoded
                sides.append(min(image.size))
        except DECODE_ERRORS:
            continue  # an unreadable file is reported by the decoding pass, with its reason
    return int(np.median(sides)) if sides else None


def size_note(image_size: int, own: Optional[int]) -> Optional[str]:
    """One line when ``image_size`` enlarges images of short side ``own`` more than :data:`FAR` times, else None."""
    if not own or image_size <= FAR * own:
        return None
    return (f"the training images' median short side is {own} px: training at {image_size}x{image_size} enlarges them "
            f"{image_size / own:.1f}x (a larger cache and slower steps for no new detail); pass --image-size {own} to keep "
            f"their size")
