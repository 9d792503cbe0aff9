"""A finished run folder, for ``hapi-runner evaluate`` and ``hapi-runner export``.

A run folder holds everything needed: ``config.json`` rebuilds the network,
``checkpoints/`` holds its weights, ``inference/`` the exported graph.
:func:`load_run` rebuilds the network with a checkpoint's weights;
:func:`evaluate_run` runs it (or its export) over a test split, every image
exactly once, and :func:`export_run` exports it again. Both engines of
``evaluate`` hand their logits to :mod:`hapi_runner.deploy.scoring`, so
dygraph and ``paddle.inference`` figures are comparable.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from ..runfolder.layout import EMA_FILE
from ..config.checks import check_choice
from ..config.train_config import TrainConfig, read_run_config
from ..training.console import setup_logging
from ..errors import DataFileError, HapiRunnerError, UsageError
from ..runfolder.fingerprint import run_fingerprint
from ..runfolder.atomic import write_json
from .calibration import (check_tta, expected_calibration_error, logits_from_probabilities, mirrored, negative_log_likelihood,
                          probabilities, read_calibration)
from .export import export_model
from .inference import InferenceModel
from .layout import SIDECAR, build_sidecar, load_sidecar
from .scoring import metrics_from_logits, write_confusion
from .onnx import export_onnx, require_onnx
from ..runfolder.layout import RunPaths, confusion_stem, evaluation_file

log = logging.getLogger("hapi_runner")

ENGINES = ("dygraph", "inference")
FORMATS = ("paddle", "onnx")


@dataclass
class LoadedRun:
    """A run's configuration and network with a checkpoint's weights in it.

    ``weights`` says which of the checkpoint's sets: ``ema`` (``ema.pdparams``,
    a run trained with ``--ema``) or ``training`` (``model.pdparams``).
    """

    run_dir: str
    config: TrainConfig
    network: Any
    spec: Any
    input_shape: list
    checkpoint: str
    epoch: int
    folder: Any = None  # a folder dataset's FolderSplits, rebuilt from config.json
    weights: str = "training"

    def sidecar(self) -> Dict[str, Any]:
        resized = self.config.image_size is not None and self.folder is None  # a folder's crop is its own preprocessing
        extra = {"resize_to": self.input_shape[-1]} if resized else {}
        if self.folder is not None:
            extra["image_preprocessing"] = self.folder.preprocessing
        if self.weights == "ema":
            extra["weights"] = "ema"
        calibration = read_calibration(self.run_dir)
        if calibration is not None:  # a fresh export keeps the run's temperature
            extra.update(temperature=calibration["temperature"], tta=calibration.get("tta", "none"))
        return build_sidecar(self.spec.mean, self.spec.std, self.input_shape, class_names=list(self.class_names),
                             model=self.config.model, dataset=self.config.dataset,
                             image_size=self.input_shape[-1] if resized else self.spec.size,
                             epoch=self.epoch, checkpoint=self.checkpoint, **extra)

    @property
    def class_names(self):
        return self.spec.class_names or [f"class_{i}" for i in range(self.spec.num_classes)]


def load_run(run_dir: str, *, checkpoint: str = "last", threads: Optional[str] = None, device: str = "cpu",
             network: Any = None, ema: bool = True) -> LoadedRun:
    """Rebuilds a run's network and loads a checkpoint's weights into it: its EMA weights where it has them.

    Args:
        run_dir: a run folder.
        checkpoint: ``last``, ``best``, or a checkpoint path. Defaults to ``last``.
        threads: CPU threads (``auto`` or N). Defaults to the run's setting.
        device: ``cpu``, ``gpu`` or ``gpu:N``. Defaults to ``cpu``.
        network: the ``paddle.nn.Layer`` to load the weights into, built
            again in Python; needed for a run trained with
            ``Runner(config, network=...)``. Defaults to None: rebuilt from
            ``config.json``.
        ema: load the checkpoint's EMA weights where it has them (the ones
            the run evaluated and exported); False loads its training weights. Defaults to True.
    """
    from ..training.environment import configure_threads, select_device
    from ..runfolder.resume import find_checkpoint, load_weights

    config = read_run_config(run_dir)
    configure_threads(threads or config.threads, config.model)
    from ..model.assembly import build_for, load_data

    select_device(device)
    setup_logging()  # Paddle is imported by now, with its root handler: our lines keep our format
    data = load_data(config, training=False, evaluation=False)  # a folder's classes and statistics come from its images
    folder, spec = data.folder, data.spec
    if network is None:
        network = build_for(config, data)
    shape = data.input_shape
    if checkpoint in ("last", "best"):
        link = RunPaths(run_dir).checkpoint(checkpoint)
        if not os.path.exists(link):
            raise UsageError(f"'{run_dir}' has no checkpoints/{checkpoint}; was it trained with hapi-runner train? Pass --checkpoint PATH.")
        checkpoint_folder = find_checkpoint(link)
    else:
        checkpoint_folder = find_checkpoint(checkpoint)
    names = spec.class_names if folder is not None else None
    state = load_weights(network, checkpoint_folder,
                         run_fingerprint(config, shape, spec.num_classes, network=network, class_names=names), prefer_ema=ema)
    network.eval()
    weights = "ema" if state["weights_file"] == EMA_FILE else "training"
    if weights == "ema":
        log.info("%s: the EMA weights (%s), as the run evaluated and exported them", checkpoint_folder, EMA_FILE)
    return LoadedRun(run_dir, config, network, spec, shape, checkpoint_folder, int(state.get("epoch", 0)), folder, weights)


# -- evaluate --------------------------------------------------------------------

def eval_dataset(run: LoadedRun, dataset: Optional[str], data_dir: Optional[str], download: bool):
    """The evaluation split of ``dataset`` (default: the run's own), checked to have the run's classes and channels."""
    from dataclasses import replace

    from ..datasets import DATASETS, spec_for
    from ..model.assembly import load_split

    cfg = run.config
    name = dataset or cfg.dataset
    check_choice("dataset", name, sorted(DATASETS))
    if run.folder is not None or name == "folder":
        return _folder_eval_dataset(run, name, data_dir)
    spec = spec_for(name, cfg.synthetic_like, cfg.normalize)
    if (spec.num_classes, spec.channels) != (run.spec.num_classes, run.spec.channels):
        raise UsageError(f"dataset {name} has {spec.num_classes} classes of {spec.channels}-channel images; "
                         f"the model was trained on {cfg.dataset} ({run.spec.num_classes} classes of {run.spec.channels}-channel images): pick a dataset of that shape.")
    other = replace(cfg, dataset=name, data_dir=data_dir or (cfg.data_dir if name == cfg.dataset else None), download=download)
    return load_split(other, "test", run.input_shape[-1], False)


def _folder_eval_dataset(run: LoadedRun, name: str, data_dir: Optional[str]):
    """The validation part of the run's own folder, or of ``data_dir`` read with the run's folder options."""
    from dataclasses import replace

    from ..datasets.folder import folder_splits_for

    if run.folder is None or name != "folder":
        raise UsageError(f"this run was trained on {run.config.dataset}; evaluating it on '{name}' needs a dataset of the same "
                         f"classes: pass --dataset {run.config.dataset}.")
    if not data_dir or os.path.realpath(data_dir) == os.path.realpath(run.config.data_dir or ""):
        return run.folder.val
    other = folder_splits_for(replace(run.config, data_dir=data_dir, train_list=None, val_list=None)).val
    if list(other.class_names) != list(run.class_names):
        raise UsageError(f"'{data_dir}' has the classes {list(other.class_names)}; the model was trained on "
                         f"{list(run.class_names)}: pass a folder of the same classes.")
    return other


def run_logits(run: LoadedRun, data, batch_size: int) -> np.ndarray:
    """The logits ``[N, classes]`` of the run's network (dygraph) on every sample of ``data``, in order."""
    import paddle

    from ..datasets import make_loader

    model = paddle.Model(run.network, paddle.static.InputSpec([None, *run.input_shape], "float32", "image"))
    model.prepare()
    loader = make_loader(data, batch_size, shuffle=False)
    return np.asarray(model.predict(loader, verbose=0, stack_outputs=True)[0])


def _inference_folder(run: LoadedRun, explicit_checkpoint: bool) -> str:
    """The run's exported graph if it holds these weights, else a fresh export of them."""
    folder = RunPaths(run.run_dir).inference
    sidecar_path = os.path.join(folder, SIDECAR)
    if os.path.isfile(sidecar_path):
        with open(sidecar_path, encoding="utf-8") as fh:
            exported_epoch = json.load(fh).get("epoch")
        if not explicit_checkpoint or exported_epoch == run.epoch:
            return folder
    target = tempfile.mkdtemp(prefix="hapi-runner-export-")
    export_model(run.network, RunPaths(target).inference, run.input_shape, run.sidecar())
    return RunPaths(target).inference


def _timed_logits(run: LoadedRun, data, *, engine: str, batch_size: int, explicit_checkpoint: bool,
                  threads: Optional[str], device: str, tensorrt: Optional[str]):
    """``(logits, seconds, engine description)`` of one pass over ``data``."""
    if engine == "dygraph":
        started = time.perf_counter()
        logits = run_logits(run, data, batch_size)
        return logits, time.perf_counter() - started, "dygraph"
    from ..training.environment import resolve_threads

    predictor = InferenceModel(_inference_folder(run, explicit_checkpoint), device=device,
                               threads=resolve_threads(threads or run.config.threads, run.config.model),
                               tensorrt=tensorrt)
    started = time.perf_counter()
    logits = np.concatenate([predictor.predict(data.transform(data.images[i:i + batch_size]))
                             for i in range(0, len(data), batch_size)])
    return logits, time.perf_counter() - started, predictor.engine


def evaluate_run(run_dir: str, *, checkpoint: Optional[str] = None, engine: str = "dygraph",
                 dataset: Optional[str] = None, data_dir: Optional[str] = None, batch_size: Optional[int] = None,
                 threads: Optional[str] = None, device: str = "cpu", download: bool = True,
                 tensorrt: Optional[str] = None, network: Any = None, tta: Optional[str] = None) -> Dict[str, Any]:
    """Evaluates a run's weights on a test split, every sample exactly once.

    Args:
        run_dir: the run folder.
        checkpoint: ``last``, ``best`` or a path. Defaults to ``last`` (the
            weights ``results.json`` and the export describe).
        engine: ``dygraph`` (``paddle.Model.predict``) or ``inference`` (the
            exported graph through ``paddle.inference``). Defaults to ``dygraph``.
        dataset, data_dir: evaluate on another dataset of the same shape, or
            find the files elsewhere. Default to the run's.
        batch_size: Defaults to the run's.
        threads: CPU threads. Defaults to the run's setting.
        device: Defaults to ``cpu``.
        download: allow Paddle's download. Defaults to True.
        tensorrt: ``fp32``/``fp16`` to run the inference engine through
            TensorRT on a GPU. Defaults to None.
        network: the network, for a run trained on one built in Python (see
            :func:`load_run`). Defaults to None.
        tta: ``flip`` averages the probabilities of each image and its
            mirror; ``none`` does not. Defaults to the run's calibration's
            choice (``hapi-runner calibrate --tta``), else ``none``.

    The run's temperature (``calibration.json``) divides the logits before
    the loss; accuracy does not depend on it.

    Returns:
        :func:`hapi_runner.deploy.scoring.metrics_from_logits`'s figures (loss,
        top-1/top-5, per-class precision, recall, F1 and support, the confusion
        matrix; ROC-AUC, sensitivity and specificity for two classes),
        ``images_per_second``, and where the CSV/PNG of the confusion matrix were written.
    """
    check_choice("engine", engine, ENGINES)
    calibration = read_calibration(run_dir) or {}
    run = load_run(run_dir, checkpoint=checkpoint or "last", threads=threads, device=device, network=network)
    tta = check_tta(tta or calibration.get("tta"), dataset or run.config.dataset)
    data = eval_dataset(run, dataset, data_dir, download)
    views, seconds = [], 0.0
    for view in ([data, mirrored(data)] if tta == "flip" else [data]):
        logits, more, engine_name = _timed_logits(
            run, view, engine=engine, batch_size=batch_size or run.config.batch_size,
            explicit_checkpoint=checkpoint is not None, threads=threads, device=device, tensorrt=tensorrt)
        views.append(logits)
        seconds += more
    result = _calibrated_metrics(np.stack(views), data, run.spec.num_classes, calibration.get("temperature", 1.0))
    result["tta"] = tta
    result.update(images_per_second=len(data) / seconds if seconds > 0 else None, seconds=seconds, engine=engine_name,
                  dataset=data.spec.name, checkpoint=run.checkpoint, epoch=run.epoch, weights=run.weights,
                  synthetic=data.synthetic)
    stem = confusion_stem(data.spec.name, run.epoch)
    result["confusion_files"] = write_confusion(run.run_dir, stem, result["confusion_matrix"], data.class_names)
    write_json(os.path.join(run.run_dir, evaluation_file(data.spec.name, run.epoch, engine)), result)
    return result


def _calibrated_metrics(views: np.ndarray, data, num_classes: int, temperature: float) -> Dict[str, Any]:
    """:func:`metrics_from_logits` of the views' averaged probabilities at ``temperature``, with the ECE before and after."""
    calibrated, raw = probabilities(views, temperature), probabilities(views)
    result = metrics_from_logits(logits_from_probabilities(calibrated), data.labels, num_classes, data.class_names)
    result.update(temperature=float(temperature), ece=expected_calibration_error(calibrated, data.labels),
                  ece_uncalibrated=expected_calibration_error(raw, data.labels),
                  loss_uncalibrated=negative_log_likelihood(views, data.labels))
    return result


# -- export ----------------------------------------------------------------------

def _verify_batch(run: LoadedRun, data_dir: Optional[str], download: bool) -> Optional[np.ndarray]:
    try:
        data = eval_dataset(run, None, data_dir, download)
    except DataFileError as exc:
        log.warning("export: %s Verifying on random inputs instead.", exc)
        rng = np.random.default_rng(0)
        return rng.standard_normal((64, *run.input_shape)).astype(np.float32)
    return data.transform(data.images[:64])


def describe_export(folder: str) -> Optional[str]:
    """``epoch 5, end of training`` for the export in ``folder``, from its sidecar; None when it holds none."""
    if not os.path.isfile(os.path.join(folder, SIDECAR)):
        return None
    try:
        sidecar = load_sidecar(folder)
    except HapiRunnerError:
        return "an export with an unreadable sidecar"
    parts = [f"epoch {sidecar['epoch']}" if sidecar.get("epoch") is not None else "epoch unknown"]
    if sidecar.get("reason"):
        parts.append(str(sidecar["reason"]))
    return ", ".join(parts)


def export_run(run_dir: str, *, checkpoint: str = "last", fmt: str = "paddle", output: Optional[str] = None,
               data_dir: Optional[str] = None, download: bool = True, network: Any = None,
               device: str = "cpu") -> Dict[str, Any]:
    """Exports a run's checkpoint for deployment and verifies the export.

    An export already in the target folder (the one training wrote, say) is
    replaced, and one line on stderr says what was replaced by what.

    Args:
        run_dir: the run folder.
        checkpoint: ``last``, ``best`` or a path. Defaults to ``last``.
        fmt: ``paddle`` (``paddle.jit.save`` for ``paddle.inference``) or
            ``onnx`` (through the optional ``paddle2onnx``, checked with
            ``onnxruntime``). Defaults to ``paddle``.
        output: the folder to write. Defaults to ``<run>/inference`` or ``<run>/onnx``.
        data_dir: where the evaluation files are, for the verification batch. Defaults to the run's.
        download: allow Paddle's download. Defaults to True.
        network: the network, for a run trained on one built in Python (see
            :func:`load_run`). Defaults to None.
        device: where the export will serve (``cpu``, ``gpu`` or ``gpu:N``): the check runs there, with that
            device's tolerances (``hapi_runner.deploy.export.compare_logits``). Defaults to ``cpu``.

    Returns:
        The verification report (also written beside the export).
    """
    check_choice("format", fmt, FORMATS)
    if fmt == "onnx":
        require_onnx()
    run = load_run(run_dir, checkpoint=checkpoint, network=network, device=device)
    batch = _verify_batch(run, data_dir, download)
    target = output or RunPaths(run_dir).export(fmt)
    before = describe_export(target)
    sidecar = dict(run.sidecar(), reason=f"checkpoint {checkpoint}")
    if fmt == "paddle":
        report = export_model(run.network, target, run.input_shape, sidecar, batch, device=device)
    else:
        report = export_onnx(run.network, target, run.input_shape, sidecar, batch)
    if before is not None:
        print(f"hapi_runner: replaced {target} ({before}) with the export of checkpoint {checkpoint} (epoch {run.epoch})",
              file=sys.stderr, flush=True)
    return report
