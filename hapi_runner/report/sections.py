"""The report's sections, each turned from a run folder and an evaluation into an HTML fragment."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import figures, trust
from .page import facts, fmt, img, notes, pct, sample, section, table
from .predictions import Predictions
from ..runfolder.finished import RunFolder, config_differences


def how_it_stopped(results: Dict[str, Any], planned: Optional[int]) -> str:
    """One line: completed, stopped early (and why), or stopped by an error."""
    reason = results.get("stop_reason")
    run = results.get("epochs_run")
    if isinstance(reason, dict) and isinstance(reason.get("early_stopping"), dict):
        why = reason["early_stopping"]
        return (f"early stopping after epoch {why.get('epoch')}: {why.get('monitor')} had not improved on "
                f"{fmt(why.get('best'))} (epoch {why.get('best_epoch')}) for {why.get('patience')} epochs")
    if isinstance(reason, dict) and reason.get("error"):
        return f"stopped by {reason['error']}: {reason.get('message', '')}"
    if planned is not None and run is not None and run < planned:
        return f"stopped after {run} of {planned} epochs"
    return f"completed all {planned} epochs" if planned != 1 else "completed its one epoch"


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "\u2013"
    minutes, seconds = divmod(float(value), 60)
    return f"{value:.1f} s" if minutes < 1 else f"{int(minutes)} min {seconds:.0f} s ({value:.0f} s)"


def header(run: RunFolder, checkpoint: Dict[str, Any], checkpoint_note: str, predictions: Optional[Predictions]) -> str:
    """What was trained, how long, where, and how it ended; the flags that differ from the defaults."""
    results, config = run.results, run.config
    best = results.get("best") or {}
    threads = results.get("threads")
    where = f"{results.get('device')}, {threads} thread{'s' if threads != 1 else ''}" if threads else str(results.get("device"))
    dataset = results.get("dataset") or config.get("dataset")
    items = [
        ("model", results.get("model") or config.get("model")),
        ("dataset", f"{dataset} (synthetic data)" if results.get("synthetic") else dataset),
        ("epochs", f"{results.get('epochs_run')} run of {config.get('epochs')} planned"
                   + (f" (resumed after epoch {results['resumed_from_epoch']})" if results.get("resumed_from_epoch") else "")),
        ("best epoch", f"{best.get('epoch')} (top-1 {pct(best.get('acc_top1'))})" if best else "\u2013 (no evaluation)"),
        ("training time", f"{_seconds(results.get('train_seconds'))} training, {_seconds(results.get('total_seconds'))} in all"),
        ("images/s", fmt(results.get("images_per_second"), 0)),
        ("device", where),
        ("Paddle", results.get("paddle_version")),
        ("how it stopped", how_it_stopped(results, config.get("epochs"))),
        ("checkpoint shown", f"epoch {checkpoint['epoch']} ({checkpoint['folder']})"),
        ("evaluation", predictions.source or f"{len(predictions.labels)} images") if predictions else ("evaluation", "none given"),
        ("run folder", run.path),
    ]
    changed = config_differences(config)
    flags = table(["setting", "this run", "default"], [(k, _value(v), _value(d)) for k, v, d in changed], table_id="flags") \
        if changed else "<p>Every setting is the default.</p>"
    return section("Run", facts(items) + notes([checkpoint_note] if checkpoint_note else []) +
                   "<h3>Settings that differ from the defaults</h3>" + flags, "run")


def _value(value: Any) -> str:
    return "none" if value is None else str(value)


def curves(run: RunFolder) -> str:
    if not run.rows:
        return section("Curves", notes(["metrics.csv is missing or empty: no curves to draw."]), "curves")
    title = f"{run.results.get('model')} on {run.results.get('dataset')}"
    return section("Curves", img(figures.curves_png(run.rows, title), "loss, top-1 accuracy and learning rate per epoch"), "curves")


def final_metrics(run: RunFolder, evaluation: Optional[Dict[str, Any]], predictions: Optional[Predictions]) -> str:
    """Final loss/top-1/top-5 of the run, and per-class precision, recall, F1 and support, worst F1 first."""
    final = run.results.get("final_eval") or {}
    shown = [("final evaluation loss", fmt(final.get("loss"))), ("final top-1", pct(final.get("acc_top1")))]
    if final.get("acc_top5") is not None:  # None with 5 classes or fewer, where top-5 is always 1
        shown.append(("final top-5", pct(final.get("acc_top5"))))
    body = facts(shown)
    if evaluation is None:
        return section("Metrics", body + notes(["No predictions were given, so the per-class table, the confusion "
                                                 "matrix and the gallery are left out."]), "metrics")
    names = predictions.class_names
    body += facts([("evaluated images", evaluation["num_samples"]), ("top-1 of the checkpoint shown", pct(evaluation["accuracy"])),
                   ("macro precision / recall / F1", " / ".join(fmt(evaluation["macro"][k]) for k in ("precision", "recall", "f1"))),
                   ("weighted precision / recall / F1", " / ".join(fmt(evaluation["weighted"][k]) for k in ("precision", "recall", "f1")))])
    order = sorted(range(len(names)), key=lambda i: (evaluation["f1"][i], evaluation["recall"][i], i))
    macro_f1 = evaluation["macro"]["f1"]
    rows = [(names[i], fmt(evaluation["precision"][i]), fmt(evaluation["recall"][i]), fmt(evaluation["f1"][i]),
             evaluation["support"][i]) for i in order]
    weak = ["weak" if evaluation["f1"][i] < macro_f1 else "" for i in order]
    body += "<h3>Per class, worst first</h3>" + table(["class", "precision", "recall", "F1", "support"], rows, table_id="per-class",
                                                       numeric=(False, True, True, True, True), row_classes=weak)
    return section("Metrics", body + notes(evaluation["notes"]), "metrics")


def binary(evaluation: Dict[str, Any], class_names: Sequence[str]) -> str:
    """ROC-AUC, sensitivity and specificity at the argmax, and the ROC curve, for two classes."""
    extra = evaluation["binary"]
    positive = class_names[extra["positive_class"]]
    body = facts([("positive class", positive), ("ROC-AUC", fmt(extra["roc_auc"])),
                  ("sensitivity (recall of the positive class)", pct(extra["sensitivity"])),
                  ("specificity (recall of the negative class)", pct(extra["specificity"])),
                  ("true / false positives", f"{extra['true_positives']} / {extra['false_positives']}"),
                  ("true / false negatives", f"{extra['true_negatives']} / {extra['false_negatives']}")])
    roc = figures.roc_png(extra["roc"]["fpr"], extra["roc"]["tpr"], extra["roc_auc"], positive)
    return section("Two classes: ROC", body + img(roc, "ROC curve"), "binary")


def confusion(evaluation: Dict[str, Any], class_names: Sequence[str]) -> str:
    matrix = evaluation["confusion_matrix"]
    pictures = '<div class="row">' + img(figures.confusion_png(matrix, class_names), "confusion matrix, counts") + \
        img(figures.confusion_png(matrix, class_names, normalised=True), "confusion matrix, row-normalised") + "</div>"
    pairs = evaluation["most_confused"]
    listing = table(["true class", "predicted as", "images", "share of the true class"],
                    [(p["true_name"], p["predicted_name"], p["count"], pct(p["fraction"])) for p in pairs],
                    table_id="confused", numeric=(False, False, True, True)) if pairs else "<p>No class was confused with another.</p>"
    return section("Confusion matrix", pictures + "<h3>Most confused pairs</h3>" + listing, "confusion")


def gallery(predictions: Predictions, class_order: Sequence[int], max_images: int, correct_per_class: int) -> str:
    """The most confident mistakes first, then a few correct images per class (worst classes first) for contrast."""
    if predictions.images is None:
        return section("Gallery", notes(["The evaluation came without images: no gallery."]), "gallery")
    labels, predicted, confidence = predictions.labels, predictions.predicted, predictions.confidence
    wrong = predictions.most_confident_mistakes(max_images)
    overlays, note = trust.mistake_overlays(predictions, wrong)
    tiles = [_tile(predictions, int(i), "mistake", overlay) for i, overlay in zip(wrong, overlays)]
    body = f"<p>{len(wrong)} of {int((predicted != labels).sum())} misclassified images, most confident first.</p>" + notes([note])
    body += '<div class="gallery" id="mistakes">' + "".join(tiles) + "</div>" if tiles else "<p>No mistakes.</p>"
    correct: List[int] = []
    for cls in class_order:
        hits = np.flatnonzero((labels == cls) & (predicted == cls))
        correct += hits[np.argsort(-confidence[hits], kind="stable")][:correct_per_class].tolist()
    correct = correct[:max_images]
    if correct:
        body += "<h3>Correct, for contrast</h3>" + '<div class="gallery" id="correct">' + \
            "".join(_tile(predictions, i, "correct") for i in correct) + "</div>"
    return section("Gallery", body, "gallery")


def _tile(predictions: Predictions, index: int, css: str, overlay: Optional[bytes] = None) -> str:
    names = predictions.class_names
    true, pred = names[predictions.labels[index]], names[predictions.predicted[index]]
    lines = [f"true: {true}", f"predicted: {pred}", f"probability: {predictions.confidence[index]:.3f}",
             f"image: {predictions.name(index)}"]
    return sample(figures.thumbnail_png(predictions.images[index]), lines, css, overlay)


def export_check(run: RunFolder) -> str:
    exported = run.results.get("export")
    if not exported and not run.export:
        return section("Export", "<p>No exported model (the run was trained with --no-export, or the export failed).</p>", "export")
    report = run.export or {}
    exported = exported or {}
    items = [("exported model", exported.get("directory") or report.get("directory")),
             ("check passed", {True: "yes", False: "NO"}.get(report.get("passed"), "\u2013")),
             ("top-1 agreement", pct(exported.get("top1_agreement", report.get("top1_agreement")))),
             ("largest logit difference", fmt(exported.get("max_abs_diff", report.get("max_abs_diff")), 8)),
             ("mean logit difference", fmt(report.get("mean_abs_diff"), 8)),
             ("checked on", f"{report.get('num_samples')} images with {report.get('engine')}" if report else "\u2013")]
    return section("Export", facts(items), "export")
