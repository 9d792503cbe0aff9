"""ONNX export through ``paddle2onnx``, verified with ``onnxruntime`` (the optional ``[onnx]`` extra).

The network is first exported for ``paddle.inference`` (``paddle.jit.save``),
then converted; the ONNX model is checked against the dygraph network on a
real batch, as the Paddle export is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..errors import HapiRunnerError
from ..runfolder.atomic import replace_dir, staging_dir, write_json
from ..runfolder.layout import INFERENCE, ONNX_REPORT as REPORT
from .export import (
    ExportVerificationError,
    compare_logits,
    dygraph_logits,
    export_agrees,
    export_model,
    float32_network,
)
from .layout import SIDECAR, find_model_files

ONNX_FILE = "model.onnx"
OPSET = 13


def require_onnx() -> None:
    """Fails with install advice unless paddle2onnx and onnxruntime import."""
    missing = []
    for name in ("paddle2onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
        except Exception as exc:  # paddle2onnx 2.x raises ValueError on import under Paddle 2.6
            import paddle

            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
            raise HapiRunnerError(f"{name} cannot be used with Paddle {paddle.__version__} ({reason}); paddle2onnx 2.x needs "
                                  f"Paddle 3, so with Paddle 2.6 install paddle2onnx 1.x: pip install 'paddle2onnx<2' onnxruntime.") from None
    if missing:
        raise HapiRunnerError(f"--format onnx needs {' and '.join(missing)}: pip install 'hapi-runner[onnx]' "
                              f"(or pip install paddle2onnx onnxruntime).")


def export_onnx(network, directory: str, input_shape: Sequence[int], sidecar: Dict[str, Any],
                verify_batch: Optional[np.ndarray] = None, *, min_top1_agreement: float = 0.999) -> Dict[str, Any]:
    """Writes ``directory/model.onnx`` with the sidecar and a verification report.

    Raises:
        ExportVerificationError: onnxruntime and the network disagree on more
            than ``1 - min_top1_agreement`` of the batch (the ONNX file is
            left in place, the report says by how much).
    """
    require_onnx()  # before the imports: it turns their failures into advice
    import onnxruntime
    import paddle2onnx

    from ..paddle_compat import paddle2onnx_export_options

    network = float32_network(network)
    directory = os.path.abspath(directory)
    graph = tempfile.mkdtemp(prefix="hapi-runner-onnx-")
    staging = staging_dir(directory)
    try:
        export_model(network, os.path.join(graph, INFERENCE), input_shape, sidecar)
        model_file, params_file = find_model_files(os.path.join(graph, INFERENCE))
        started = time.perf_counter()
        with stdout_to_stderr():  # paddle2onnx reports progress on stdout
            paddle2onnx.export(model_file, params_file, save_file=os.path.join(staging, ONNX_FILE), opset_version=OPSET,
                               **paddle2onnx_export_options())
        shutil.copyfile(os.path.join(graph, INFERENCE, SIDECAR), os.path.join(staging, SIDECAR))
        target = os.path.join(directory, ONNX_FILE)
        report: Dict[str, Any] = {"file": target, "opset": OPSET, "export_seconds": time.perf_counter() - started,
                                  "paddle2onnx": paddle2onnx.__version__, "onnxruntime": onnxruntime.__version__}
        if verify_batch is not None:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only: its coloured graph-optimisation warnings say nothing about the export
            session = onnxruntime.InferenceSession(os.path.join(staging, ONNX_FILE), options, providers=["CPUExecutionProvider"])
            actual = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(verify_batch, np.float32)})[0]
            report.update(compare_logits(dygraph_logits(network, verify_batch), actual))
            report["engine"] = "onnxruntime CPUExecutionProvider"
        write_json(os.path.join(staging, REPORT), report)
        replace_dir(staging, directory)  # model, sidecar and report appear together, or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(graph, ignore_errors=True)
    if verify_batch is not None and not export_agrees(report, min_top1_agreement):
        raise ExportVerificationError(
            f"the ONNX model agrees with the trained network on {report['top1_agreement']:.2%} of {report['num_samples']} images "
            f"(needed {min_top1_agreement:.2%}), largest logit difference {report['max_abs_diff']:.3g} (allowed {report['max_abs_diff_allowed']:.3g}); see {os.path.join(directory, REPORT)}."
        )
    return report


@contextlib.contextmanager
def stdout_to_stderr():
    """Sends what C++ libraries print to stdout to stderr instead, so ``--json`` output stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):  # and Python-level prints
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
