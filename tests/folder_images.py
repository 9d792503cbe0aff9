"""Class-folder trees and file lists of real images: the embedded Fashion-MNIST subset written as image files."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def fashion(count, offset=0):
    """``count`` real 28x28 grey images and labels of the embedded set."""
    with np.load(ROOT / "hapi_runner" / "data" / "fashion_mnist_mini.npz") as data:
        return data["x_train"][offset:offset + count, 0], data["y_train"][offset:offset + count].astype(np.int64)


def pil_image(grey, mode="RGB", size=None):
    """A 28x28 grey array as a Pillow image in ``mode`` (colour tinted, so channels differ), resized to ``size``."""
    image = Image.fromarray(grey, "L")
    if size is not None:
        image = image.resize(size, Image.BILINEAR)
    if mode == "L":
        return image
    g = np.asarray(image)
    rgb = Image.fromarray(np.stack([g, (g * 0.7).astype(np.uint8), 255 - g], axis=-1), "RGB")
    if mode == "RGBA":
        alpha = Image.fromarray(np.where(g > 10, 255, 0).astype(np.uint8), "L")
        rgba = rgb.copy()
        rgba.putalpha(alpha)
        return rgba
    if mode == "P":
        return rgb.convert("P", palette=Image.ADAPTIVE, colors=64)
    return rgb


# Sizes, modes and formats cycled through the written files.
VARIANTS = [((28, 28), "L", "png"), ((40, 32), "RGB", "jpg"), ((32, 48), "RGBA", "png"), ((36, 36), "P", "png"),
            ((30, 45), "RGB", "JPEG"), ((28, 28), "RGB", "bmp"), ((33, 29), "RGB", "webp"), ((29, 33), "L", "tiff")]


def write_image(path, grey, variant):
    size, mode, ext = variant
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pil_image(grey, mode, size)
    fmt = {"jpg": "JPEG", "JPEG": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP", "tiff": "TIFF"}[ext]
    if fmt == "JPEG":
        image.save(path, fmt, quality=95)
    elif fmt == "WEBP":
        image.save(path, fmt, lossless=True)
    else:
        image.save(path, fmt)
    return path


def class_tree(folder, per_class, classes=("bag", "coat", "dress"), split="train", offset=0, nested=True, junk=True):
    """``folder/split/<class>/...`` with ``per_class`` real images each; some nested, plus junk files. Returns paths."""
    grey, _ = fashion(per_class * len(classes), offset)
    written = []
    for c, name in enumerate(classes):
        for k in range(per_class):
            variant = VARIANTS[(c + k) % len(VARIANTS)]
            sub = f"sub{k % 3}/" if nested and k % 2 else ""
            written.append(write_image(Path(folder) / split / name / f"{sub}img{k}.{variant[2]}", grey[c * per_class + k], variant))
        if junk:
            (Path(folder) / split / name / ".DS_Store").write_bytes(b"\0\1junk")
            (Path(folder) / split / name / "notes.txt").write_text("not an image\n")
    return written


def exif_rotated_jpeg(path, array):
    """A JPEG stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to view)."""
    stored = Image.fromarray(array).transpose(Image.ROTATE_90)  # what a sideways camera sensor records
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", quality=100, exif=exif.tobytes(), subsampling=0)
    return path


def truncated_png(path, grey):
    buffer = io.BytesIO()
    pil_image(grey, "RGB", (40, 40)).save(buffer, "PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path
