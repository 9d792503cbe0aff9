"""``hapi-runner predict``: class predictions for image files from an exported model.

Works from an export folder alone (``inference/`` with its ``hapi_runner.json``
sidecar), without the run folder or the training code's configuration: the
sidecar says how to turn a file into the network's input (channels, size,
padding, mean and std).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..config.checks import check_int
from ..errors import HapiRunnerError, UsageError
from .calibration import answers_from_logits, check_tta, check_unsure_below, mirror
from .inference import InferenceModel
from .layout import SIDECAR
from ..runfolder.layout import INFERENCE

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".npy")


def resolve_model_dir(target: str) -> str:
    """An export folder from an export folder or a run folder (its ``inference/``)."""
    if not os.path.exists(target):
        raise UsageError(f"'{target}' does not exist; pass a run folder or its inference/ folder.")
    for folder in (target, os.path.join(target, INFERENCE)):
        if os.path.isfile(os.path.join(folder, SIDECAR)):
            return folder
    raise HapiRunnerError(f"'{target}' holds no exported model ({SIDECAR} not found there or in its inference/); "
                          f"export it first: hapi-runner export RUN.")


def expand_paths(paths: Sequence[str]) -> List[str]:
    """Files as given, folders replaced by their image files (sorted, not recursive)."""
    files: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise UsageError(f"folder '{path}' has no images ({', '.join(IMAGE_EXTENSIONS)}).")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UsageError(f"'{path}' does not exist; pass image files (PNG, JPEG, BMP, WebP, TIFF, .npy) or folders of them.")
    return files


def read_image(path: str, channels: int, size: int) -> np.ndarray:
    """uint8 ``[channels, size, size]`` from a PNG/JPEG/BMP (converted and resized) or a .npy array."""
    if path.lower().endswith(".npy"):
        return _read_npy(path, channels, size)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise UsageError(f"'{path}' is not an image Pillow can read; pass PNG, JPEG, BMP or .npy files.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UsageError(f"'{path}' cannot be decoded ({type(exc).__name__}: {exc}); the file may be truncated.") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_for(path: str, preprocessing: Dict[str, Any]) -> np.ndarray:
    """uint8 ``[H, W, C]`` of an image file decoded as a folder dataset decodes it (for a folder-trained export)."""
    from ..datasets.image_decode import DECODE_ERRORS, decode_image

    try:
        return decode_image(path, int(preprocessing["channels"]), int(preprocessing["resize_short"]))
    except DECODE_ERRORS as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"'{path}' cannot be read as an image ({reason}); pass JPEG, PNG, BMP, WebP or TIFF files.") from None


def _read_npy(path: str, channels: int, size: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"'{path}' is not a readable .npy array ({type(exc).__name__}).") from None
    if np.issubdtype(array.dtype, np.floating) and array.size and array.min() >= 0 and array.max() <= 1:
        array = np.round(array * 255)  # 0-1 floats are accepted as well as 0-255 integers
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (1, 3) and array.shape[0] not in (1, 3):
        array = array.transpose(2, 0, 1)
    if array.ndim != 3 or array.shape[0] not in (1, 3) or array.shape[1:] != (size, size):
        raise UsageError(f"'{path}' holds an array of shape {list(array.shape)}; expected [{size}, {size}], "
                         f"[{size}, {size}, C] or [C, {size}, {size}] with C 1 or 3.")
    if array.min() < 0 or array.max() > 255:
        raise UsageError(f"'{path}' has values outside 0-255; save pixels as uint8 (or floats in 0-1).")
    array = array.astype(np.uint8)
    if array.shape[0] != channels:
        array = np.repeat(array, 3, axis=0) if channels == 3 else np.round(array.mean(axis=0, keepdims=True)).astype(np.uint8)
    return array


def predict_files(target: str, paths: Sequence[str], *, top_k: int = 5, device: str = "cpu",
                  threads: Optional[int] = None, batch_size: int = 64, tensorrt: Optional[str] = None,
                  tta: Optional[str] = None, unsure_below: Optional[float] = None,
                  explain: Optional[Callable[[List[str], np.ndarray, List[Dict[str, Any]]], None]] = None) -> List[Dict[str, Any]]:
    """Top-k classes with calibrated probabilities for each image file.

    Args:
        target: an export folder or a run folder.
        paths: image files and folders of them.
        top_k: classes to report per file. Defaults to 5 (at most the class count).
        device: Defaults to ``cpu``.
        threads: CPU threads. Defaults to every core.
        batch_size: images per predictor run. Defaults to 64.
        tensorrt: ``fp32``/``fp16`` for TensorRT on a GPU. Defaults to None.
        tta: ``flip`` averages each image's probabilities with its mirror's;
            ``none`` does not. Defaults to the sidecar's ``tta`` (set by
            ``hapi-runner calibrate --tta``), else ``none``.
        unsure_below: answer ``unsure`` below this calibrated top-1 probability. Defaults to None (never).
        explain: called with each batch's paths, its preprocessed images and
            its answers (e.g. a :class:`hapi_runner.deploy.gradcam.ExplanationWriter`). Defaults to None.

    Returns:
        One dict per file: ``path`` and
        :func:`hapi_runner.deploy.calibration.answers_from_logits`'s answer
        (``answer``, ``unsure``, ``class_id``, ``class_name``, ``probability``,
        ``top_k``, raw ``logits``); the sidecar's ``temperature`` divides the logits.
    """
    check_int("top_k", top_k, minimum=1)
    unsure_below = check_unsure_below(unsure_below)
    files = expand_paths(paths)
    model = InferenceModel(resolve_model_dir(target), device=device, threads=threads, tensorrt=tensorrt)
    sidecar = model.sidecar
    tta = check_tta(tta or sidecar.get("tta"), sidecar.get("dataset"))
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        batch = model.preprocess(_read_batch(chunk, sidecar))
        views = [model.predict(batch)] + ([model.predict(mirror(batch))] if tta == "flip" else [])
        answers = answers_from_logits(np.stack(views), class_names=model.class_names, top_k=top_k,
                                      temperature=float(sidecar.get("temperature") or 1.0), unsure_below=unsure_below)
        if explain is not None:
            explain(chunk, batch, answers)
        results.extend({"path": path, **answer} for path, answer in zip(chunk, answers))
    return results


def _read_batch(paths: Sequence[str], sidecar: Dict[str, Any]):
    """The files as the export's preprocess takes them: decoded as a folder dataset decodes, or read at the input size."""
    steps = sidecar.get("image_preprocessing")
    if steps:
        return [decode_for(p, steps) for p in paths]
    size = int(sidecar.get("image_size") or sidecar.get("pad_to"))
    return np.stack([read_image(p, int(sidecar["channels"]), size) for p in paths])
