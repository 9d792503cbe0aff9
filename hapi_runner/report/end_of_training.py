"""The report a finished training writes: one timed prediction pass of the final weights, per-class figures, report.html.

Training evaluates through ``paddle.Model.evaluate``, which keeps the loss and
the accuracies but no prediction, so the per-class table, the confusion
matrix and the gallery need one more pass over the evaluation set: as long
as one of the evaluations the run already made. It is made when it is cheap
beside the training: under ``FREE_SECONDS`` whatever the training took, or
under ``PASS_SHARE`` of the training time. The pass times its first batches
and stops as soon as it is seen to need more, so a skipped report costs a
couple of batches, and one line says what the pass would take and which
command writes the report later. Only the main process writes; nothing here
can fail a training that has finished: a report that cannot be written is one
warning line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..training.distributed import is_main, say
from ..deploy.calibrate import calibrate_predictions
from ..deploy.gradcam import dataset_cams
from ..errors import HapiRunnerError
from ..training.metrics import classification_report, without_roc_points
from .build import MAX_IMAGES, build_report
from .predictions import Predictions, data_root

log = logging.getLogger("hapi_runner")

FREE_SECONDS = 10.0  # a pass this short is always made
PASS_SHARE = 0.1  # else at most this share of the training time


def pass_budget(train_seconds: Optional[float]) -> float:
    """Seconds the end-of-training prediction pass may take: ``FREE_SECONDS``, or ``PASS_SHARE`` of the training if more."""
    return max(FREE_SECONDS, PASS_SHARE * float(train_seconds or 0.0))


def predict_within(network, data, batch_size: int, budget: float, *, amp: Optional[str] = None,
                   amp_dtype: str = "float16", clock: Callable[[], float] = time.perf_counter) -> Tuple[Optional[np.ndarray], float]:
    """Class probabilities ``[N, classes]`` of ``network`` on every sample of ``data``, in order, within ``budget`` seconds.

    The network is called directly, not through ``paddle.Model``, so the main
    process of a launched job can make the pass alone (hapi's predict would
    wait for the other ranks). From the second batch on, the pass stops as
    soon as its pace says the whole would take longer than ``budget``.

    Args:
        network: a ``paddle.nn.Layer``; put back in training mode afterwards if it was.
        data: an ImageDataset (uint8 ``images``, a batch ``transform``).
        batch_size: images per forward pass.
        budget: seconds the whole pass may take.
        amp: the run's AMP level (``O1``/``O2``), None for float32. Defaults to None.
        amp_dtype: Defaults to ``float16``.
        clock: Defaults to ``time.perf_counter``.

    Returns:
        ``(probabilities, seconds)``, or ``(None, estimated seconds of the whole pass)`` when stopped.
    """
    import paddle

    total, batches, outputs = len(data), 0, []
    was_training = network.training
    network.eval()
    started = clock()
    try:
        with paddle.no_grad(), paddle.amp.auto_cast(enable=amp is not None, level=amp or "O1", dtype=amp_dtype):
            for start in range(0, total, batch_size):
                logits = network(paddle.to_tensor(data.transform(data.images[start:start + batch_size])))
                if isinstance(logits, (list, tuple)):
                    logits = logits[0]
                outputs.append(np.asarray(logits.astype("float32").numpy(), dtype=np.float64))
                batches += 1
                done = min(start + batch_size, total)
                estimate = (clock() - started) / done * total
                if done < total and batches >= 2 and estimate > budget:
                    return None, estimate
    finally:
        if was_training:
            network.train()
    return Predictions.from_logits(data.labels, np.concatenate(outputs)).probs, clock() - started


@dataclass
class TrainingOutcome:
    """What the end-of-training report needs of a finished ``fit`` (``Runner.outcome()``).

    Attributes:
        run_dir: the run folder.
        config: the run's TrainConfig.
        network: the trained ``paddle.nn.Layer`` (its final weights, or the best ones restore_best put back).
        eval_data: the evaluation ImageDataset.
        amp: the AMP level trained at, or None.
        restored_epoch: the epoch whose weights restore_best put back, or None.
    """

    run_dir: str
    config: Any
    network: Any
    eval_data: Any
    amp: Optional[str] = None
    restored_epoch: Optional[int] = None


def _checkpoint_and_source(outcome: TrainingOutcome, results: Dict[str, Any], seconds: float) -> Tuple[str, str]:
    """The checkpoint holding the weights predicted with, and the report's line on where the predictions come from."""
    data, config, restored = outcome.eval_data, outcome.config, outcome.restored_epoch
    if config.dataset == "folder":
        split = "validation images"
    else:
        split = f"the {config.val_split:g} of train held out" if config.val_split else "test split"
    weights = f"the best weights (epoch {restored}, put back by restore_best)" if restored else \
        f"the final weights (epoch {results.get('epochs_run')})"
    source = f"{weights}, {len(data)} images of {data.spec.name} ({split}), predicted at the end of training in {seconds:.1f} s"
    return ("best" if restored else "last"), source


def report_at_end(outcome: TrainingOutcome, results: Dict[str, Any]) -> Dict[str, Any]:
    """After a finished ``fit``: adds ``class_metrics`` to the results and writes report.html, when the pass is cheap.

    The caller writes results.json afterwards, once, with what was added here.

    Args:
        outcome: what the run's ``fit`` left (``Runner.outcome()``).
        results: what ``fit`` returns; gains ``class_metrics`` (the per-class
            figures of :func:`hapi_runner.training.metrics.classification_report`, without
            the ROC points) and ``report`` (the page's path) when they are made.

    Returns:
        ``results``.
    """
    if not outcome.config.report or not is_main():
        return results
    data, run_dir = outcome.eval_data, outcome.run_dir
    budget = pass_budget(results.get("train_seconds"))
    probs, seconds = predict_within(outcome.network, data, outcome.config.batch_size, budget,
                                    amp=outcome.amp, amp_dtype=outcome.config.amp_dtype)
    if probs is None:
        say(f"hapi_runner: report skipped: it needs one more pass over {len(data)} images (~{seconds:.0f} s, more than "
            f"{budget:.0f} s); run hapi-runner report {run_dir}")
        return results
    checkpoint, source = _checkpoint_and_source(outcome, results, seconds)
    calibration = calibrate_predictions(run_dir, probs, data.labels, source)
    if calibration is not None:
        results["calibration"] = {key: calibration[key] for key in ("temperature", "ece_before", "ece_after")}
    predictions = Predictions.from_dataset(data, probs, source, root=data_root(outcome.config))
    if outcome.amp is None:  # Grad-CAM feeds float32; an AMP network's half-precision weights would refuse it
        predictions.heatmaps = dataset_cams(outcome.network, data)
    evaluation = classification_report(predictions.labels, predictions.probs, predictions.class_names)
    results["class_metrics"] = dict(without_roc_points(evaluation), class_names=predictions.class_names, source=source)
    results["mistakes"] = predictions.mistakes(MAX_IMAGES)  # the gallery's images, by file for a folder dataset
    try:
        results["report"] = build_report(run_dir, predictions, checkpoint=checkpoint, results=results)["path"]
        say(f"hapi_runner: report: {results['report']}")
    except (OSError, HapiRunnerError) as exc:
        log.warning("report.html not written (%s: %s); the training result stands. Write it later with: hapi-runner report %s",
                    type(exc).__name__, exc, run_dir)
    return results
