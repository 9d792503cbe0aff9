"""The exported static graph, served by ``paddle.inference``.

On the CPU the graph runs through oneDNN, roughly ten times faster than the
dygraph network for ResNet-50, which is why serving goes through here and
not through ``paddle.Model.predict``. :mod:`hapi_runner.deploy.layout` says
what the export folder holds.

Example:
    >>> from hapi_runner.deploy import InferenceModel
    >>> model = InferenceModel("output/lenet-mnist/run_001/inference")
    >>> logits = model.predict(model.preprocess(uint8_images))
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..config.checks import device_kind_index
from ..errors import HapiRunnerError, UsageError
from .layout import SIDECAR, find_model_files, graph_format, load_sidecar

# oneDNN keeps compiled kernels per input shape; a bound keeps memory flat
# when a server sees many batch sizes.
ONEDNN_CACHE_CAPACITY = 16


def default_threads() -> int:
    """The CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


TENSORRT_PRECISIONS = ("fp32", "fp16")


def create_predictor(model_dir: str, device: str = "cpu", *, threads: Optional[int] = None, use_mkldnn: bool = True,
                     tensorrt: Optional[str] = None):
    """A ``paddle.inference`` predictor for an exported graph.

    Args:
        model_dir: an export folder or a ``paddle.jit.save`` prefix.
        device: ``cpu``, ``gpu`` or ``gpu:N``. Defaults to ``cpu``.
        threads: CPU math threads. Defaults to every CPU this process may use.
        use_mkldnn: run CPU kernels through oneDNN. Defaults to True.
        tensorrt: on a GPU, run supported subgraphs through TensorRT at this
            precision (``fp32`` or ``fp16``); needs a Paddle built with
            TensorRT. Defaults to None (off).

    Raises:
        HapiRunnerError: no graph there, a GPU asked of a CPU-only Paddle, or
            TensorRT asked of a build without it.
    """
    import paddle
    import paddle.inference as paddle_infer

    from ..paddle_compat import inference_enable_onednn

    kind, index = device_kind_index(device)
    model_file, params_file = find_model_files(model_dir)
    if tensorrt and kind == "gpu":
        check_tensorrt_format(model_file)
    config = paddle_infer.Config(model_file, params_file)
    if kind == "gpu":
        if not paddle.device.is_compiled_with_cuda():
            raise HapiRunnerError(
                f"device '{device}' needs the GPU build of Paddle, but {paddle.__version__} is CPU-only; "
                f"pass device='cpu' or install paddlepaddle-gpu."
            )
        config.enable_use_gpu(256, index)  # initial memory pool in MB; it grows as needed
        if tensorrt:
            _enable_tensorrt(config, tensorrt)
    elif tensorrt:
        raise UsageError(f"TensorRT runs on a GPU only; drop tensorrt='{tensorrt}' or pass device='gpu'.")
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(threads or default_threads()))
        if use_mkldnn:
            inference_enable_onednn(config, ONEDNN_CACHE_CAPACITY)
    # No enable_memory_optim(): Paddle 3.3's PIR predictor fails to build with it
    # ("Not find predictor_id 0 and pass_name memory_optimize_pass").
    # Without this every predictor prints pages of pass logs to stderr.
    config.disable_glog_info()
    try:
        return paddle_infer.create_predictor(config)
    except Exception as exc:  # the C++ errors are pages long; the first line says what failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HapiRunnerError(f"paddle.inference cannot load {model_file}: {first}") from exc


def check_tensorrt_format(model_file: str) -> None:
    """Refuses TensorRT for a PIR graph (``model.json``), where it would silently not run.

    ``Config.enable_tensorrt_engine`` works through the TensorRT subgraph
    pass of the ProgramDesc (``.pdmodel``) path. Paddle 3 loads a PIR graph
    through its PIR passes, where that pass does not run: the predictor
    would serve plain GPU kernels while claiming TensorRT. Paddle 3's own
    route (``paddle.tensorrt.convert``, which needs the ``tensorrt`` package
    and a GPU build) is not wired in, because it has not been run here.

    Raises:
        HapiRunnerError: ``model_file`` is a PIR graph.
    """
    if graph_format(model_file) == "pir":
        raise HapiRunnerError(
            f"TensorRT runs on .pdmodel graphs only, and {model_file} is a PIR graph (Paddle 3's jit.save format), "
            f"whose inference path would run without TensorRT; serve it without --tensorrt, or export and serve with Paddle 2.6.")


def _enable_tensorrt(config, precision: str) -> None:
    import paddle.inference as paddle_infer

    if precision not in TENSORRT_PRECISIONS:
        raise UsageError(f"tensorrt precision '{precision}' is not known; choose one of: {', '.join(TENSORRT_PRECISIONS)}.")
    version = tuple(paddle_infer.get_trt_compile_version()) if hasattr(paddle_infer, "get_trt_compile_version") else (0,)
    if not any(version):
        raise HapiRunnerError("this Paddle build has no TensorRT support; run without --tensorrt (plain GPU kernels), "
                              "or install a paddlepaddle-gpu build with TensorRT.")
    mode = paddle_infer.PrecisionType.Half if precision == "fp16" else paddle_infer.PrecisionType.Float32
    # Engines are built on first use for the shapes seen; small subgraphs stay on Paddle's kernels.
    config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=256, min_subgraph_size=3,
                                  precision_mode=mode, use_static=False, use_calib_mode=False)


class InferenceModel:
    """An exported graph with its sidecar, ready to predict.

    A predictor is not thread-safe: use one InferenceModel per thread.

    Args:
        model_dir: an export folder (or a ``paddle.jit.save`` prefix, which
            then has no sidecar).
        device: ``cpu``, ``gpu`` or ``gpu:N``. Defaults to ``cpu``.
        threads: CPU math threads. Defaults to every CPU this process may use.
        use_mkldnn: run CPU kernels through oneDNN. Defaults to True.
        tensorrt: ``fp32`` or ``fp16`` to use TensorRT on a GPU (see :func:`create_predictor`). Defaults to None.

    Attributes:
        model_file, params_file: the files loaded.
        file_format: ``pir`` or ``pdmodel``.
        sidecar: the folder's ``hapi_runner.json``, or None if it has none.
        input_shape: ``[C, H, W]`` from the sidecar, else from the graph
            (None where the graph leaves it open).
        engine: a short description, e.g. ``paddle.inference cpu oneDNN 4 threads``.
    """

    def __init__(self, model_dir: str, device: str = "cpu", *, threads: Optional[int] = None, use_mkldnn: bool = True,
                 tensorrt: Optional[str] = None):
        self.model_dir = str(model_dir)
        self.model_file, self.params_file = find_model_files(self.model_dir)
        self.file_format = graph_format(self.model_file)
        folder = self.model_dir if os.path.isdir(self.model_dir) else os.path.dirname(self.model_file)
        self.sidecar = load_sidecar(folder) if os.path.isfile(os.path.join(folder, SIDECAR)) else None
        self.predictor = create_predictor(self.model_dir, device, threads=threads, use_mkldnn=use_mkldnn, tensorrt=tensorrt)
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output_name = self.predictor.get_output_names()[0]
        self.input_shape = self._input_shape()
        kind, _ = device_kind_index(device)
        if kind == "gpu":
            self.engine = f"paddle.inference {device}" + (f" TensorRT {tensorrt}" if tensorrt else "")
        else:
            count = int(threads or default_threads())
            self.engine = f"paddle.inference cpu{' oneDNN' if use_mkldnn else ''} {count} thread{'s' if count > 1 else ''}"

    def _input_shape(self) -> Optional[list]:
        if self.sidecar and self.sidecar.get("input_shape"):
            return [int(v) for v in self.sidecar["input_shape"]]
        try:
            shape = list(self._input.shape())
        except Exception:  # some builds cannot report shapes before the first run
            return None
        dims = shape[1:]
        return [int(v) for v in dims] if len(dims) == 3 and all(v > 0 for v in dims) else None

    def predict(self, batch: np.ndarray, batch_size: Optional[int] = None) -> np.ndarray:
        """Logits ``[N, classes]`` for a preprocessed float32 batch ``[N, C, H, W]``.

        Args:
            batch: normalised images, any N >= 1 (see :meth:`preprocess`).
            batch_size: run at most this many at once. Defaults to all of
                ``batch`` in one run.

        Raises:
            UsageError: ``batch`` is not 4-D or not the shape the graph takes.
        """
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[0] == 0:
            raise UsageError(f"predict takes a batch shaped [N, C, H, W] with N >= 1, got shape {list(batch.shape)}.")
        if self.input_shape and list(batch.shape[1:]) != self.input_shape:
            raise UsageError(
                f"the exported model takes images shaped {self.input_shape}, got {list(batch.shape[1:])}; "
                f"preprocess them with InferenceModel.preprocess."
            )
        if not np.issubdtype(batch.dtype, np.floating):
            raise UsageError(f"predict takes normalised float32 images, got {batch.dtype}; preprocess them with InferenceModel.preprocess.")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        step = int(batch_size) if batch_size else len(batch)
        outputs = [self._run(batch[i:i + step]) for i in range(0, len(batch), step)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self._output_name).copy_to_cpu()

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 images ``[N, C, h, w]`` to the float32 batch the graph takes, per the sidecar.

        Zero-pads around the centre up to ``pad_to`` (as in training), then
        computes ``(pixel / 255 - mean) / std``. An export trained on a folder
        of images (its sidecar has ``image_preprocessing``) takes a list of
        uint8 ``[H, W, C]`` images of any size instead, and resizes their short
        side and centre-crops them as evaluation did.

        Raises:
            HapiRunnerError: the export has no sidecar.
            UsageError: ``images`` has the wrong number of channels or is larger than the input.
        """
        if not self.sidecar:
            raise HapiRunnerError(f"'{self.model_dir}' has no {SIDECAR}, so its preprocessing is unknown; export it with hapi_runner.")
        if self.sidecar.get("image_preprocessing"):
            return self._resize_and_crop(images)
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]
        channels = int(self.sidecar.get("channels") or images.shape[1])
        size = int(self.sidecar.get("pad_to") or images.shape[-1])
        if images.ndim != 4 or images.shape[1] != channels or images.shape[2] > size or images.shape[3] > size:
            raise UsageError(
                f"preprocess takes images shaped [N, {channels}, h, w] with h, w <= {size}, got {list(images.shape)}."
            )
        top, left = (size - images.shape[2]) // 2, (size - images.shape[3]) // 2
        padded = np.zeros((images.shape[0], channels, size, size), dtype=np.float32)
        padded[:, :, top:top + images.shape[2], left:left + images.shape[3]] = images
        mean = np.asarray(self.sidecar["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.sidecar["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        return (padded / 255.0 - mean) / std

    def _resize_and_crop(self, images) -> np.ndarray:
        """A folder-trained export's input: each uint8 ``[H, W, C]`` (or ``[H, W]``) image of any size resized
        (short side) and centre-cropped as evaluation did, then normalised."""
        from ..datasets.folder_transform import from_preprocessing, to_short_side

        steps = self.sidecar["image_preprocessing"]
        transform = from_preprocessing(steps)
        arrays = []
        for image in ([images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)):
            image = np.asarray(image)
            image = image[:, :, None] if image.ndim == 2 else image
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != transform.channels:
                raise UsageError(f"preprocess takes uint8 images shaped [H, W, {transform.channels}] (or [H, W] for one "
                                 f"channel), got {image.dtype} {list(image.shape)}.")
            arrays.append(to_short_side(image, int(steps["resize_short"])))
        return transform(arrays)

    @property
    def class_names(self) -> Optional[list]:
        return (self.sidecar or {}).get("class_names")
