"""The export engine: the trained network as a static graph that ``paddle.inference`` serves, checked before it is kept.

:func:`export_model` does the work for the ``StaticExport`` callback (which
decides when) and for ``hapi-runner export``:

1. ``paddle.jit.save`` the network, in eval mode, into a staging folder next
   to ``directory``;
2. write the sidecar ``hapi_runner.json`` (preprocessing, input shape,
   class names, versions, graph format);
3. load the graph with ``paddle.inference`` and compare it with the dygraph
   network on a batch of real, preprocessed images; write
   ``export_report.json``;
4. swap the staging folder into ``directory``. An export that fails the
   check goes to ``<directory>-rejected`` instead, so a good export already
   in place is never replaced by a bad one.

A process killed mid-export leaves ``.tmp-<name>-*-<pid>`` (a staging
folder) or ``.tmp-old-<name>-<pid>`` (the previous export, set aside for the
swap) beside ``directory`` (the swap is :func:`runfolder.atomic.replace_dir`); :func:`recover_export` puts the previous export
back or removes the litter, and runs before every export and at the start of
every fit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Sequence

import numpy as np

from ..config.checks import is_number
from ..errors import HapiRunnerError, UsageError
from ..runfolder.atomic import recover_litter, replace_dir, staging_dir, write_json
from .inference import InferenceModel
from ..runfolder.layout import EXPORT_REPORT
from .layout import MODEL_PREFIX, SIDECAR, SIDECAR_VERSION, find_model_files, graph_format

log = logging.getLogger("hapi_runner")

INPUT_NAME = "image"
REQUIRED_SIDECAR_KEYS = ("mean", "std")
# How the exported graph may differ from the trained network and still be a good export, per device kind
# (``cpu`` or ``gpu``), relative to the logit scale (the largest reference logit, at least 1). On the CPU the
# two differ by summation order alone; a GPU's TF32 matmuls and fused kernels (and TensorRT in fp16) keep about
# 10 mantissa bits, so their differences are a hundred times larger.
# - TIE_TOLERANCE: a sample whose two picks the reference separates by no more than this is a near-tie, and a
#   flip between them is not a disagreement.
# - MAX_DIFF_TOLERANCE: the largest logit difference allowed; beyond it the export fails, whatever the picks.
TIE_TOLERANCE = {"cpu": 1e-4, "gpu": 1e-2}
MAX_DIFF_TOLERANCE = {"cpu": 1e-2, "gpu": 5e-2}
# What Paddle prints while tracing for jit.save that says nothing about the export: Paddle 3.x's
# argument parser warns once per process on the first paddle.add (any `a + b` in forward) although
# no out= tensor is passed.
PADDLE_EXPORT_NOISE = (b"Paddle static graph(PIR) not support input out tensor",)


class ExportVerificationError(HapiRunnerError):
    """The exported graph does not predict what the trained network predicts."""


class GraphConversionError(HapiRunnerError):
    """``paddle.jit.save`` could not turn the network's forward into a static graph."""


def export_model(network, directory: str, input_shape: Sequence[int], sidecar: Dict[str, Any],
                 verify_batch: Optional[np.ndarray] = None, *, min_top1_agreement: float = 0.999,
                 device: str = "cpu", metadata: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Exports ``network`` to ``directory`` and checks the export against it.

    Args:
        network: the ``paddle.nn.Layer`` (``paddle.Model.network``). Its
            train/eval mode is restored afterwards.
        directory: the export folder, e.g. ``<run>/inference``; replaced as a
            whole when the export passes.
        input_shape: ``[C, H, W]`` the network takes; the batch stays open.
        sidecar: how to feed the graph: ``mean`` and ``std`` (0-1 scale)
            required; ``class_names``, ``model``, ``dataset`` as known (see
            :func:`hapi_runner.deploy.layout.build_sidecar`). ``channels``,
            ``pad_to`` and ``input_shape`` are set from ``input_shape``.
        verify_batch: preprocessed float32 images ``[N, C, H, W]`` from the
            evaluation set. Defaults to None: no check, and the report says so.
        min_top1_agreement: the smallest share of ``verify_batch`` on which
            graph and network must pick the same class. Defaults to 0.999.
        device: where ``paddle.inference`` runs the check. Defaults to ``cpu``.
        metadata: more sidecar fields (the callback adds the epoch and why it
            exported). Defaults to None.

    Returns:
        The report, also written to ``directory/export_report.json``.

    Raises:
        UsageError: a bad argument.
        ExportVerificationError: top-1 agreement below ``min_top1_agreement``;
            the export is left in ``<directory>-rejected``.
        HapiRunnerError: ``paddle.jit.save`` or ``paddle.inference`` failed.
    """
    input_shape = check_input_shape(input_shape)
    network = float32_network(network)
    check_sidecar(sidecar, input_shape)
    check_agreement(min_top1_agreement)
    verify_batch = check_verify_batch(verify_batch, input_shape)
    directory = os.path.abspath(str(directory))
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    recover_export(directory)
    staging, report = _stage(network, directory, input_shape, dict(sidecar, **(metadata or {})),
                             verify_batch=verify_batch, min_top1_agreement=min_top1_agreement, device=device)
    if not report["passed"]:
        rejected = directory + "-rejected"
        replace_dir(staging, rejected)
        raise ExportVerificationError(
            f"the exported graph agrees with the trained network on {report['top1_agreement']:.2%} of "
            f"{report['num_samples']} images (needed {min_top1_agreement:.2%}), largest logit difference "
            f"{report['max_abs_diff']:.3g} (allowed {report['max_abs_diff_allowed']:.3g}); {directory} is unchanged, "
            f"the rejected export and its report are in {rejected}."
        )
    replace_dir(staging, directory)
    return report


def _stage(network, directory: str, input_shape: list, sidecar: Dict[str, Any], *,
           verify_batch: Optional[np.ndarray], min_top1_agreement: float, device: str):
    """Graph, sidecar and report in a new staging folder beside ``directory``; ``(folder, report)``."""
    staging = staging_dir(directory)
    started = time.perf_counter()
    try:
        model_file = save_static(network, os.path.join(staging, MODEL_PREFIX), input_shape)
        export_seconds = time.perf_counter() - started
        write_json(os.path.join(staging, SIDECAR), _full_sidecar(sidecar, input_shape, model_file))
        report = verify_export(network, staging, verify_batch=verify_batch, min_top1_agreement=min_top1_agreement,
                               device=device)
        report.update(export_seconds=export_seconds, seconds=time.perf_counter() - started, directory=directory)
        write_json(os.path.join(staging, EXPORT_REPORT), report)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, report


@contextlib.contextmanager
def stderr_without(fragments: Sequence[bytes]) -> Iterator[None]:
    """Holds back what is written to file descriptor 2 meanwhile, then writes it out without the lines holding a fragment.

    Paddle's C++ side writes its warnings straight to the descriptor, past
    ``sys.stderr``; every other line comes out, in order, when the block ends.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(keepends=True)
                            if not any(fragment in line for fragment in fragments))
            while kept:
                kept = kept[os.write(2, kept):]


def conversion_reason(exc: BaseException) -> str:
    """One line from a ``jit.save`` failure: Paddle's last line (the error itself) and the first source line it points at.

    Paddle's dygraph-to-static errors span many lines: ``In transformed
    code:``, the frames, and the error last.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0]
    where = next((m for m in (re.search(r'File "([^"]+)", line (\d+)', line) for line in lines) if m), None)
    return lines[-1] + (f" (at {where.group(1)}:{where.group(2)})" if where else "")


def save_static(network, prefix: str, input_shape: Sequence[int]) -> str:
    """``paddle.jit.save`` of ``network`` in eval mode; returns the graph file written.

    ``jit.save`` traces the layer in whatever mode it is in, so a network in
    train mode would be exported with dropout on and batch norm reading batch
    statistics. The mode is switched for the trace and restored afterwards.
    """
    import paddle
    from paddle.static import InputSpec

    was_training = network.training
    network.eval()
    try:
        with stderr_without(PADDLE_EXPORT_NOISE):
            paddle.jit.save(network, prefix, input_spec=[InputSpec([None, *input_shape], "float32", INPUT_NAME)])
    except Exception as exc:
        raise GraphConversionError(f"paddle.jit.save could not export {type(network).__name__}: {conversion_reason(exc)}") from exc
    finally:
        if was_training:
            network.train()
    model_file, _ = find_model_files(prefix)
    return model_file


def verify_export(network, folder: str, *, verify_batch: Optional[np.ndarray], min_top1_agreement: float = 0.999,
                  device: str = "cpu") -> Dict[str, Any]:
    """Runs ``verify_batch`` through the graph in ``folder`` and through ``network``; the comparison as a dict."""
    import paddle

    report: Dict[str, Any] = {"verified": verify_batch is not None, "min_top1_agreement": min_top1_agreement,
                              "paddle_version": paddle.__version__}
    if verify_batch is None:
        report.update(passed=True, num_samples=0, engine=None, verify_seconds=0.0)
        return report
    started = time.perf_counter()
    engine = InferenceModel(folder, device=device)
    exported = engine.predict(verify_batch)
    expected = dygraph_logits(network, verify_batch)
    report.update(compare_logits(expected, exported, device=device), engine=engine.engine,
                  verify_seconds=time.perf_counter() - started)
    report["passed"] = export_agrees(report, min_top1_agreement)
    return report


def export_agrees(comparison: Dict[str, Any], min_top1_agreement: float) -> bool:
    """Whether a :func:`compare_logits` result passes: enough top-1 agreement, and no logit off by more than allowed."""
    return (comparison["top1_agreement"] >= min_top1_agreement
            and comparison["max_abs_diff"] <= comparison["max_abs_diff_allowed"])


def float32_network(network):
    """``network`` itself when its weights are float32, else a float32 copy of it.

    After AMP O2 training the weights are float16 or bfloat16, but the
    export takes float32 images (``jit.save``'s InputSpec) and serves
    float32: the graph is traced from a copy cast to float32, and checked
    against that copy. The trained network is left as it is.
    """
    import copy

    import paddle

    half = (paddle.float16, paddle.bfloat16)
    if not any(p.dtype in half for p in network.parameters()):
        return network
    clone = copy.deepcopy(network)
    clone.to(dtype="float32")
    return clone


def dygraph_logits(network, batch: np.ndarray) -> np.ndarray:
    """The network's outputs on ``batch`` in eval mode, without gradients; the mode is restored."""
    import paddle

    was_training = network.training
    network.eval()
    try:
        with paddle.no_grad():
            out = network(paddle.to_tensor(batch))
    finally:
        if was_training:
            network.train()
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out.numpy(), dtype=np.float32)


def compare_logits(expected: np.ndarray, actual: np.ndarray, device: str = "cpu") -> Dict[str, Any]:
    """Differences and top-1 agreement of two logit arrays ``[N, classes]``.

    A sample counts as agreeing when both pick the same class, or when the
    reference (``expected``) separates the two picks by no more than
    :data:`TIE_TOLERANCE` of the logit scale: which of two nearly equal
    logits wins is down to the kernels, not to the export. Such a flip still
    needs every logit within :data:`MAX_DIFF_TOLERANCE` of the scale
    (``max_abs_diff_allowed``; :func:`export_agrees` applies both).

    Args:
        expected: the trained network's logits.
        actual: the exported graph's logits.
        device: where they were computed (``cpu``, ``gpu`` or ``gpu:N``), which sets the tolerances. Defaults to ``cpu``.
    """
    kind = "gpu" if str(device).startswith("gpu") else "cpu"
    expected = expected.reshape(len(expected), -1)
    actual = actual.reshape(len(actual), -1)
    if expected.shape != actual.shape:
        raise ExportVerificationError(
            f"the exported graph returns shape {list(actual.shape)}, the trained network {list(expected.shape)}; "
            f"the export is broken."
        )
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    diff = np.abs(expected - actual)
    pick_expected, pick_actual = expected.argmax(axis=1), actual.argmax(axis=1)
    exact = pick_expected == pick_actual
    rows = np.arange(len(expected))
    scale = max(1.0, float(np.abs(expected).max()))
    margin = expected[rows, pick_expected] - expected[rows, pick_actual]
    ties = ~exact & (margin <= TIE_TOLERANCE[kind] * scale)
    return {
        "num_samples": int(len(expected)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_logit": float(np.abs(expected).max()),
        "max_abs_diff_allowed": MAX_DIFF_TOLERANCE[kind] * scale,
        "tie_tolerance": TIE_TOLERANCE[kind] * scale,
        "top1_agreement": float((exact | ties).mean()),
        "top1_exact_agreement": float(exact.mean()),
        "near_ties": int(ties.sum()),
    }


# -- checks ------------------------------------------------------------------
def check_input_shape(input_shape) -> list:
    try:
        shape = [int(v) for v in input_shape]
    except (TypeError, ValueError):
        shape = []
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"input_shape must be [C, H, W] with positive sizes, got {input_shape!r}.")
    return shape


def check_sidecar(sidecar, input_shape: Sequence[int]) -> None:
    if not isinstance(sidecar, dict):
        raise UsageError(f"sidecar must be a dict with at least {', '.join(REQUIRED_SIDECAR_KEYS)}, got {type(sidecar).__name__}.")
    missing = [k for k in REQUIRED_SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise UsageError(f"sidecar lacks {', '.join(missing)}; build it with hapi_runner.deploy.build_sidecar.")
    channels = input_shape[0]
    for key in REQUIRED_SIDECAR_KEYS:
        values = list(np.ravel(sidecar[key]))
        if len(values) not in (1, channels):
            raise UsageError(f"sidecar {key} must hold one value per channel ({channels}) or one for all, got {len(values)}: {values}.")
    if any(float(v) <= 0 for v in np.ravel(sidecar["std"])):
        raise UsageError(f"sidecar std must be positive, got {list(np.ravel(sidecar['std']))}.")
    if sidecar.get("scale", "0-1") != "0-1":
        raise UsageError(f"sidecar scale must be '0-1' (input = (pixel / 255 - mean) / std), got {sidecar['scale']!r}.")


def check_agreement(value) -> None:
    if not is_number(value) or not 0 < value <= 1:
        raise UsageError(f"min_top1_agreement must be a share in (0, 1], got {value!r}; 0.999 allows one miss in a thousand.")


def check_verify_batch(batch, input_shape: Sequence[int]) -> Optional[np.ndarray]:
    if batch is None:
        return None
    batch = np.asarray(batch)
    if batch.ndim != 4 or len(batch) == 0 or list(batch.shape[1:]) != list(input_shape):
        raise UsageError(f"verify_batch must be images shaped [N, {', '.join(map(str, input_shape))}] with N >= 1, got {list(batch.shape)}.")
    if not np.issubdtype(batch.dtype, np.floating):
        raise UsageError(
            f"verify_batch must be preprocessed float32 images (as the eval loader yields them), got {batch.dtype}; "
            f"raw pixels would not test the preprocessing the sidecar describes."
        )
    if not np.isfinite(batch).all():
        raise UsageError("verify_batch holds NaN or infinite values; pass real preprocessed images.")
    return np.ascontiguousarray(batch, dtype=np.float32)


# -- files -------------------------------------------------------------------
PADDED_PREPROCESSING = "input = (pixel / 255 - mean) / std per channel, after zero-padding the image around the centre to pad_to"
FOLDER_PREPROCESSING = ("decode (EXIF orientation applied, alpha on white, mode L or RGB), resize the short side to "
                        "image_preprocessing.resize_short (bilinear), take the centre crop x crop, then input = "
                        "(pixel / 255 - mean) / std per channel")


def _full_sidecar(sidecar: Dict[str, Any], input_shape: Sequence[int], model_file: str) -> Dict[str, Any]:
    import paddle

    channels = input_shape[0]
    out = dict(sidecar)
    out.update(
        sidecar_version=SIDECAR_VERSION,
        scale="0-1",
        preprocessing=FOLDER_PREPROCESSING if sidecar.get("image_preprocessing") else PADDED_PREPROCESSING,
        mean=[float(v) for v in np.ravel(sidecar["mean"])],
        std=[float(v) for v in np.ravel(sidecar["std"])],
        channels=channels,
        # The pipeline pads smaller images up to the network's input side.
        pad_to=int(input_shape[-1]),
        input_shape=list(input_shape),
        input_name=INPUT_NAME,
        output="logits",
        model_file=os.path.basename(model_file),
        params_file=MODEL_PREFIX + ".pdiparams",
        file_format=graph_format(model_file),
        paddle_version=paddle.__version__,
        exported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if len(out["mean"]) == 1 and channels > 1:
        out["mean"], out["std"] = out["mean"] * channels, out["std"] * channels
    return out


def recover_export(directory: str) -> None:
    """Undoes what a process killed mid-export left beside ``directory`` (see :func:`runfolder.atomic.recover_litter`).

    A previous export set aside goes back in place when ``directory`` is
    missing, so a kill between the two renames of the swap loses nothing;
    staging folders of dead writers are removed, a live process's are left alone.
    """
    directory = os.path.abspath(directory)
    for name in (os.path.basename(directory), os.path.basename(directory) + "-rejected"):
        for target in recover_litter(os.path.dirname(directory), name):
            log.warning("put back the export a killed process had set aside: %s", target)
