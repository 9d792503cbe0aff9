"""Where the model looked: Grad-CAM heat maps from a run's dygraph network.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of a convolutional
layer's output by the mean gradient of a class's logit with respect to it,
sums the weighted channels and keeps the positive part: the places whose
activation raised that class. The last convolutional layer is used unless a
layer is named, because it keeps spatial detail while already seeing whole
objects. The exported graph has no gradients, so this runs on the network
rebuilt from the run folder with a checkpoint's weights.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UsageError
from ..runfolder.atomic import atomic_write_bytes

OVERLAY_MIN_SIDE = 112  # pixels: a 28x28 input is drawn 4x, so the heat map's detail stays visible
OVERLAY_ALPHA = 0.7  # the heat colour's share of the hottest pixel (cooler ones take less)


def conv_layers(network) -> List[Tuple[str, Any]]:
    """``(name, layer)`` of every 2-D convolution, in the order the network registered them."""
    import paddle

    return [(name, layer) for name, layer in network.named_sublayers() if isinstance(layer, paddle.nn.Conv2D)]


def find_layer(network, name: Optional[str] = None) -> Tuple[str, Any]:
    """The layer whose output Grad-CAM weighs: ``name``, or the last convolution registered.

    Raises:
        UsageError: no layer of that name, or a network without convolutions.
    """
    convs = conv_layers(network)
    known = [n for n, _ in convs]
    shown = ", ".join(known[-8:]) + (f" (and {len(known) - 8} earlier)" if len(known) > 8 else "")
    if name is None:
        if not convs:
            raise UsageError(f"{type(network).__name__} has no Conv2D layer for Grad-CAM to weigh; "
                             f"name a layer with a [N, C, H, W] output with --cam-layer NAME.")
        return convs[-1]
    layers = dict(network.named_sublayers())
    if name not in layers:
        raise UsageError(f"the network has no layer '{name}'; its convolutional layers are: {shown or 'none'}. "
                         f"Pass one of them to --cam-layer.")
    return name, layers[name]


def grad_cam(network, batch: np.ndarray, classes: Sequence[int], layer_name: Optional[str] = None) -> np.ndarray:
    """Grad-CAM heat maps ``[N, H, W]`` (non-negative, at the input's size) of ``classes`` for a preprocessed batch.

    Args:
        network: a ``paddle.nn.Layer`` in eval mode.
        batch: float32 ``[N, C, H, W]``, normalised as the network was trained.
        classes: the class to explain, one per image.
        layer_name: the layer to weigh (see :func:`find_layer`). Defaults to the last Conv2D.

    Raises:
        UsageError: no such layer, or its output is not ``[N, C, h, w]``.
    """
    import paddle
    import paddle.nn.functional as F

    name, layer = find_layer(network, layer_name)
    captured = {}
    handle = layer.register_forward_post_hook(lambda _layer, _inputs, output: captured.__setitem__("output", output))
    try:
        images = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))
        images.stop_gradient = False  # a frozen network still needs a path for the gradient to flow
        logits = network(images)
        logits = logits[0] if isinstance(logits, (list, tuple)) else logits
    finally:
        handle.remove()
    activation = captured.get("output")
    if activation is None or len(activation.shape) != 4:
        shape = None if activation is None else list(activation.shape)
        raise UsageError(f"layer '{name}' gives output of shape {shape}; Grad-CAM needs a [N, C, H, W] layer: pass a "
                         f"convolutional one to --cam-layer.")
    chosen = F.one_hot(paddle.to_tensor(np.asarray(classes, dtype=np.int64)), logits.shape[1])
    score = (logits * chosen.astype(logits.dtype)).sum()
    gradient = paddle.grad(score, activation)[0]
    weights = gradient.mean(axis=[2, 3], keepdim=True)
    cam = F.relu((weights * activation).sum(axis=1, keepdim=True))
    cam = F.interpolate(cam, size=list(batch.shape[2:]), mode="bilinear", align_corners=False)
    # Bilinear interpolation of non-negative values stays non-negative, bar float rounding.
    return np.clip(cam.numpy()[:, 0].astype(np.float32), 0.0, None)


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """A heat map scaled to its maximum as uint8 RGB ``[H, W, 3]``: blue (nothing) through green to red (most)."""
    peak = float(cam.max())
    value = cam / peak if peak > 0 else np.zeros_like(cam)
    # A piecewise-linear "jet": each channel a tent centred at a quarter of the range.
    rgb = np.stack([np.clip(1.5 - np.abs(4.0 * value - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]``: the image (``[H, W]`` or ``[H, W, C]``) with the heat map blended over it.

    Each pixel takes the heat colour in proportion to its heat, up to
    ``alpha`` at the maximum, so the image shows through where the network did
    not look. A heat map of another size than the image is resized to it first.
    """
    from PIL import Image

    image = np.asarray(image)
    rgb = np.repeat(image[..., None] if image.ndim == 2 else image[..., :1], 3, axis=-1) \
        if image.ndim == 2 or image.shape[-1] == 1 else image[..., :3]
    if cam.shape != rgb.shape[:2]:
        cam = np.asarray(Image.fromarray(cam.astype(np.float32)).resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR))
    peak = float(cam.max())
    weight = alpha * (cam / peak if peak > 0 else np.zeros_like(cam))[..., None]
    blended = (1.0 - weight) * rgb.astype(np.float32) + weight * heat_colours(cam).astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)


def overlay_png(image: np.ndarray, cam: np.ndarray) -> bytes:
    """:func:`overlay` as PNG bytes, enlarged by a whole factor (nearest neighbour) to at least ``OVERLAY_MIN_SIDE``."""
    import io

    from PIL import Image

    picture = Image.fromarray(overlay(image, cam))
    factor = max(1, -(-OVERLAY_MIN_SIDE // max(picture.size)))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def unnormalise(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` pixels back from a ``(pixel / 255 - mean) / std`` batch ``[N, C, H, W]``."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    pixels = (np.asarray(batch, dtype=np.float32) * std + mean) * 255.0
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def dataset_cams(network, data, layer_name: Optional[str] = None, batch_size: int = 16) -> Callable[[Sequence[int], Sequence[int]], np.ndarray]:
    """A function ``(indices, classes) -> [len(indices), H, W]`` heat maps of a dataset's images, for the report's gallery.

    The images go through the dataset's own (evaluation) transform, so each
    map lies over the image exactly as the network saw it. The layer is
    looked up at the first call, so building the function never fails.
    """

    def cams(indices: Sequence[int], classes: Sequence[int]) -> np.ndarray:
        maps = []
        for start in range(0, len(indices), batch_size):
            chosen = [int(i) for i in indices[start:start + batch_size]]
            images = data.images[np.asarray(chosen)] if isinstance(data.images, np.ndarray) else [data.images[i] for i in chosen]
            maps.append(grad_cam(network, data.transform(images), classes[start:start + batch_size], layer_name))
        return np.concatenate(maps) if maps else np.zeros((0, 0, 0), np.float32)

    return cams


class ExplanationWriter:
    """Writes ``<name>_gradcam.png`` (overlay) and ``<name>_gradcam.npy`` (raw map) per image into a folder.

    Args:
        network: the run's network with its checkpoint's weights, in eval mode.
        out_dir: the folder to write (created).
        mean, std: the sidecar's normalisation, to draw the images back from the batch.
        class_names: the network's classes.
        explain_class: explain this class for every image instead of the top-1. Defaults to None.
        layer_name: the layer to weigh. Defaults to the last Conv2D.

    Raises:
        UsageError: ``explain_class`` is not one of ``class_names``, or the layer is unknown.
    """

    def __init__(self, network, out_dir: str, mean, std, class_names: Sequence[str], *,
                 explain_class: Optional[str] = None, layer_name: Optional[str] = None):
        names = list(class_names)
        if explain_class is not None and explain_class not in names:
            raise UsageError(f"--explain-class '{explain_class}' is not a class of this model; its classes are: "
                             f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}.")
        self.network, self.out_dir, self.mean, self.std, self.names = network, out_dir, mean, std, names
        self.class_id = None if explain_class is None else names.index(explain_class)
        self.layer_name = find_layer(network, layer_name)[0]
        self.used: Dict[str, int] = {}
        os.makedirs(out_dir, exist_ok=True)

    def __call__(self, paths: Sequence[str], batch: np.ndarray, answers: List[Dict[str, Any]]) -> None:
        """Explains one predicted batch; adds ``explanation`` (class, layer, files) to each answer."""
        classes = [self.class_id if self.class_id is not None else a["class_id"] for a in answers]
        cams = grad_cam(self.network, batch, classes, self.layer_name)
        images = unnormalise(batch, self.mean, self.std)
        for path, cam, image, cls, answer in zip(paths, cams, images, classes, answers):
            stem = self._stem(path)
            png, npy = (os.path.join(self.out_dir, f"{stem}_gradcam.{ext}") for ext in ("png", "npy"))
            atomic_write_bytes(png, overlay_png(image, cam))
            atomic_write_bytes(npy, _npy_bytes(cam))
            answer["explanation"] = {"class_id": int(cls), "class_name": self.names[cls], "layer": self.layer_name,
                                     "overlay": png, "heatmap": npy}

    def _stem(self, path: str) -> str:
        """The file's name without extension, numbered where two inputs share it."""
        stem = os.path.splitext(os.path.basename(path))[0]
        seen = self.used.get(stem, 0)
        self.used[stem] = seen + 1
        return stem if seen == 0 else f"{stem}_{seen + 1}"


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def run_explainer(target: str, out_dir: str, *, explain_class: Optional[str] = None, layer_name: Optional[str] = None,
                  checkpoint: str = "last", device: str = "cpu", threads: Optional[str] = None) -> ExplanationWriter:
    """An :class:`ExplanationWriter` for ``predict --explain``: the run's dygraph network with a checkpoint's weights.

    Args:
        target: the run folder, or its ``inference/`` export folder.
        out_dir: where the overlays and heat maps go.
        explain_class: a class name to explain instead of the top-1. Defaults to None.
        layer_name: the layer to weigh. Defaults to the last Conv2D.
        checkpoint: ``last`` (the weights the export holds), ``best`` or a path. Defaults to ``last``.
        device, threads: Default to ``cpu`` and the run's setting.

    Raises:
        UsageError: ``target`` is an export folder without its run (the graph has no gradients).
    """
    from ..runfolder.layout import CONFIG
    from .layout import load_sidecar
    from .predict import resolve_model_dir
    from .tasks import load_run

    export = os.path.realpath(resolve_model_dir(target))
    run_dir = next((f for f in (target, os.path.dirname(export)) if os.path.isfile(os.path.join(f, CONFIG))), None)
    if run_dir is None:
        raise UsageError(f"--explain needs the run folder (Grad-CAM takes gradients of the network in its checkpoint, "
                         f"which an exported graph lacks); '{target}' holds no {CONFIG}: pass the run folder.")
    run = load_run(run_dir, checkpoint=checkpoint, threads=threads, device=device)
    sidecar = load_sidecar(export)
    return ExplanationWriter(run.network, out_dir, sidecar["mean"], sidecar["std"], run.class_names,
                             explain_class=explain_class, layer_name=layer_name)
