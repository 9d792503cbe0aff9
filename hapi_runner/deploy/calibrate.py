"""``hapi-runner calibrate RUN``: fit a run's temperature on its evaluation images and write it where predict reads it.

The end of training fits the temperature on the predictions it already made
(:func:`calibrate_predictions`); this command fits it again for another
checkpoint or with test-time flips. Either writes ``RUN/calibration.json``
(temperature, ECE and NLL before and after) and puts the temperature into
the export's sidecar, where ``predict``, ``evaluate`` and a server read it.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np

from ..errors import HapiRunnerError
from .calibration import check_tta, fit_temperature, logits_from_probabilities, mirrored, save_calibration, summarize
from .tasks import eval_dataset, load_run, run_logits

log = logging.getLogger("hapi_runner")


def calibrate_run(run_dir: str, *, checkpoint: str = "last", tta: str = "none", data_dir: Optional[str] = None,
                  batch_size: Optional[int] = None, threads: Optional[str] = None, device: str = "cpu",
                  download: bool = True, network: Any = None) -> Dict[str, Any]:
    """Fits temperature scaling on the run's evaluation set (dygraph, from a checkpoint) and saves it.

    Args:
        run_dir: a run folder written by train.
        checkpoint: ``last``, ``best`` or a checkpoint path. Defaults to ``last`` (the weights the export holds).
        tta: ``flip`` fits the temperature to the averaged probabilities of
            each image and its mirror, and records that predict should flip
            too; ``none`` does not. Defaults to ``none``.
        data_dir: where the evaluation files are. Defaults to the run's.
        batch_size: Defaults to the run's.
        threads: CPU threads. Defaults to the run's setting.
        device: Defaults to ``cpu``.
        download: allow Paddle's download. Defaults to True.
        network: the network of a run trained on one built in Python. Defaults to None (rebuilt from config.json).

    Returns:
        The record written to ``calibration.json`` (see
        :func:`hapi_runner.deploy.calibration.summarize`), plus ``epoch``,
        ``checkpoint`` and ``sidecar`` (the export sidecar updated, or None).
    """
    run = load_run(run_dir, checkpoint=checkpoint, threads=threads, device=device, network=network)
    tta = check_tta(tta, run.config.dataset)
    data = eval_dataset(run, None, data_dir, download)
    size = batch_size or run.config.batch_size
    views = np.stack([run_logits(run, view, size) for view in ([data, mirrored(data)] if tta == "flip" else [data])])
    temperature = fit_temperature(views, data.labels)
    source = f"checkpoint epoch {run.epoch}, {len(data)} images of {data.spec.name}" + (", each with its mirror" if tta == "flip" else "")
    record = dict(summarize(views, data.labels, temperature, tta=tta, source=source), epoch=run.epoch, checkpoint=run.checkpoint)
    record["sidecar"] = save_calibration(run_dir, record)
    return record


def calibrate_predictions(run_dir: str, probs: np.ndarray, labels: np.ndarray, source: str) -> Optional[Dict[str, Any]]:
    """The end of training's calibration: the temperature fitted on probabilities already predicted, saved.

    Nothing here may fail a finished training: a calibration that cannot be
    made or written is one warning line, and None.
    """
    logits = logits_from_probabilities(probs)
    try:
        record = summarize(logits, labels, fit_temperature(logits, labels), source=source)
        record["sidecar"] = save_calibration(run_dir, record)
    except (OSError, HapiRunnerError) as exc:  # a full disk, or too few images to fit
        log.warning("calibration not fitted (%s: %s); the training result stands. Fit it later with: hapi-runner calibrate %s",
                    type(exc).__name__, exc, run_dir)
        return None
    return record
