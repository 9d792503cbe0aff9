"""Deployment: the trained network as an exported graph, and the tools that use it.

    >>> from hapi_runner.deploy import InferenceModel
    >>> model = InferenceModel("output/lenet-mnist/run_001/inference")

Modules, each with one job:

- ``layout``: what an export folder holds; the ``hapi_runner.json`` sidecar.
- ``inference``: ``paddle.inference`` predictors and :class:`InferenceModel`.
- ``export``: the export engine (``jit.save``, sidecar, check, atomic swap, recovery).
- ``onnx``: the ONNX export through ``paddle2onnx``, checked with ``onnxruntime``.
- ``predict``: class predictions for image files (``hapi-runner predict``).
- ``calibration``: temperature scaling, ECE, test-time flips, and ``answers_from_logits`` (logits -> what a user is told).
- ``calibrate``: a run's temperature fitted and saved (``hapi-runner calibrate``, and the end of training).
- ``gradcam``: Grad-CAM heat maps and overlays from the run's dygraph network (``predict --explain``).
- ``metrics``: loss, top-k and the confusion matrix from logits.
- ``run``: a finished run folder evaluated and exported (``hapi-runner evaluate`` and ``export``).

The names below load their module on first use, so importing this package
imports neither Paddle nor the modules a caller does not need (the
``StaticExport`` callback needs only the engine).
"""

_LAZY = {
    "build_sidecar": "layout",
    "find_model_files": "layout",
    "load_sidecar": "layout",
    "InferenceModel": "inference",
    "create_predictor": "inference",
    "ExportVerificationError": "export",
    "export_model": "export",
    "recover_export": "export",
    "export_onnx": "onnx",
    "predict_files": "predict",
    "answers_from_logits": "calibration",
    "calibrate_run": "calibrate",
    "grad_cam": "gradcam",
    "metrics_from_logits": "scoring",
    "load_run": "tasks",
    "evaluate_run": "tasks",
    "export_run": "tasks",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
