"""What an export folder holds, and the sidecar that says how to feed its graph.

An export folder (``<run>/inference/``) holds what ``paddle.jit.save`` wrote
under the prefix ``model`` and a sidecar, ``hapi_runner.json``::

    inference/
      model.json | model.pdmodel   the graph: PIR (Paddle 3.x) or ProgramDesc (Paddle 2.6)
      model.pdiparams              the weights
      hapi_runner.json             preprocessing, input shape, class names, versions
      export_report.json           how closely the graph matched the trained network

Nothing here imports Paddle: the Runner builds a sidecar before Paddle's
thread count is settled, and ``hapi-runner predict`` finds the files first.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

from ..errors import HapiRunnerError, UsageError

MODEL_PREFIX = "model"
SIDECAR = "hapi_runner.json"
SIDECAR_VERSION = 1
# Suffix of the graph file -> the format name recorded in the sidecar.
GRAPH_FORMATS = ((".json", "pir"), (".pdmodel", "pdmodel"))
PARAMS_SUFFIX = ".pdiparams"


def find_model_files(folder_or_prefix: str) -> Tuple[str, str]:
    """``(model_file, params_file)`` of an exported graph.

    Args:
        folder_or_prefix: an export folder (the prefix ``model`` is looked
            for inside it), or a prefix as given to ``paddle.jit.save``
            (``path/to/model``, with or without a suffix).

    Returns:
        The graph file (``.json`` for PIR, preferred when both exist, else
        ``.pdmodel``) and the ``.pdiparams`` file.

    Raises:
        HapiRunnerError: no graph or no weights are there.
    """
    path = str(folder_or_prefix)
    if os.path.isdir(path):
        prefix = os.path.join(path, MODEL_PREFIX)
    else:
        prefix = path
        for suffix in (*(s for s, _ in GRAPH_FORMATS), PARAMS_SUFFIX):
            if prefix.endswith(suffix):
                prefix = prefix[: -len(suffix)]
                break
    graphs = [prefix + suffix for suffix, _ in GRAPH_FORMATS if os.path.isfile(prefix + suffix)]
    if not graphs:
        raise HapiRunnerError(
            f"no exported graph at '{path}' (looked for {prefix}.json and {prefix}.pdmodel); "
            f"export one with `hapi-runner export` or train without --no-export."
        )
    params = prefix + PARAMS_SUFFIX
    if not os.path.isfile(params):
        raise HapiRunnerError(f"the exported graph {graphs[0]} has no weights file {params}; export the model again.")
    return graphs[0], params


def graph_format(model_file: str) -> str:
    """``pir`` or ``pdmodel``, from the graph file's suffix."""
    for suffix, name in GRAPH_FORMATS:
        if model_file.endswith(suffix):
            return name
    raise UsageError(f"'{model_file}' is not a Paddle graph file; expected a name ending in .json or .pdmodel.")


def load_sidecar(model_dir: str) -> Dict[str, Any]:
    """The sidecar (``hapi_runner.json``) of an export folder.

    Raises:
        HapiRunnerError: the folder has no sidecar, or it is not valid JSON.
    """
    path = os.path.join(str(model_dir), SIDECAR)
    if not os.path.isfile(path):
        raise HapiRunnerError(
            f"'{model_dir}' has no {SIDECAR}, so its preprocessing is unknown; "
            f"export with hapi_runner (`hapi-runner export`), or pass a folder it wrote."
        )
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise HapiRunnerError(f"cannot read {path}: {exc}; export the model again.") from exc


def build_sidecar(mean: Sequence[float], std: Sequence[float], input_shape: Sequence[int],
                  class_names: Optional[Sequence[str]] = None, model: Optional[str] = None,
                  dataset: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """The sidecar fields a caller supplies, in the shape :func:`export_model` expects.

    Args:
        mean, std: per-channel statistics on the 0-1 scale: the model input
            is ``(pixel / 255 - mean) / std``.
        input_shape: ``[C, H, W]`` the network takes.
        class_names: one name per output. Defaults to None.
        model, dataset: names, for people reading the file. Default to None.
        **extra: further JSON-serialisable fields, kept as given;
            ``image_preprocessing`` (a folder dataset's evaluation resize,
            crop and statistics) makes ``predict`` resize and crop as
            evaluation did instead of padding.

    ``pad_to`` is the input side: smaller images (MNIST's 28 for a 32-pixel
    VGG) are zero-padded around the centre to it, as in training.
    """
    channels, height, _ = (int(v) for v in input_shape)
    return {
        "model": model,
        "dataset": dataset,
        "channels": channels,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "scale": "0-1",
        "pad_to": height,
        "class_names": list(class_names) if class_names is not None else None,
        **extra,
    }
