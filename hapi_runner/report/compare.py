"""``compare_runs``: finished runs side by side, and an overlay of their evaluation curves."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UsageError
from ..runfolder.atomic import atomic_write_bytes
from . import figures
from .page import fmt
from ..runfolder.finished import RunFolder, read_run

COMPARE_PNG = "compare.png"
# Where a run was written, and what it printed or wrote at the end, say nothing about how it was trained.
_NOT_SETTINGS = ("save_dir", "output_root", "overwrite", "resume", "verbose", "report")


def _best(rows: Sequence[Dict[str, Any]], key: str, lowest: bool = False) -> Optional[float]:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return None
    return min(values) if lowest else max(values)


def _summary(run: RunFolder) -> Dict[str, Any]:
    results = run.results
    final = results.get("final_eval") or {}
    best = results.get("best") or {}
    return {
        "run": run.path, "model": results.get("model"), "dataset": results.get("dataset"),
        "epochs_run": results.get("epochs_run"), "epochs": run.config.get("epochs"),
        "train_seconds": results.get("train_seconds"),
        "final": {k: final.get(k) for k in ("loss", "acc_top1", "acc_top5")},
        "best": {"epoch": best.get("epoch"), "acc_top1": _best(run.rows, "eval_acc_top1"),
                 "acc_top5": _best(run.rows, "eval_acc_top5"), "loss": _best(run.rows, "eval_loss", lowest=True)},
    }


def _differing(configs: Sequence[Dict[str, Any]]) -> Dict[str, List[Any]]:
    keys: List[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys and k not in _NOT_SETTINGS]
    return {k: [c.get(k) for c in configs] for k in keys if len({repr(c.get(k)) for c in configs}) > 1}


def compare_runs(runs: Sequence[str], output: Optional[str] = None) -> Dict[str, Any]:
    """Reads finished runs and writes a PNG overlaying their evaluation loss and top-1.

    Args:
        runs: two run folders or more.
        output: the PNG to write. Defaults to ``compare.png`` in the current folder.

    Returns:
        ``runs`` (per run: model, dataset, epochs, training seconds, ``final``
        and ``best`` loss/top-1/top-5), ``differing`` (each configuration key
        whose values differ, with one value per run) and ``curves`` (the PNG's path).

    Raises:
        UsageError: fewer than two runs, or a folder that is not a finished run.
    """
    if len(runs) < 2:
        raise UsageError(f"compare needs two run folders or more, got {len(runs)}; pass e.g. output/lenet-mnist/run_001 output/lenet-mnist/run_002.")
    figures.require_drawing()
    folders = [read_run(path, need_checkpoints=False) for path in runs]
    labels = _labels(runs)
    path = output or COMPARE_PNG
    atomic_write_bytes(path, figures.overlay_png([(label, run.rows) for label, run in zip(labels, folders)]))
    return {"runs": [dict(_summary(run), label=label) for label, run in zip(labels, folders)],
            "differing": _differing([run.config for run in folders]), "curves": os.path.abspath(path)}


def _labels(runs: Sequence[str]) -> List[str]:
    """Short names for the legend: the shortest path tails that tell the runs apart."""
    parts = [os.path.normpath(os.path.abspath(r)).split(os.sep) for r in runs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i + 1}: {label}" for i, label in enumerate(labels)]


def format_comparison(result: Dict[str, Any]) -> str:
    """The comparison as a text table, one column per run."""
    runs = result["runs"]
    rows = [("run", [r["label"] for r in runs]), ("model", [r["model"] for r in runs]), ("dataset", [r["dataset"] for r in runs])]
    rows += [(key, [_text(v) for v in values]) for key, values in result["differing"].items() if key not in ("model", "dataset")]
    rows += [("epochs run/set", [f"{r['epochs_run']}/{r['epochs']}" for r in runs]),
             ("training s", [_text(r["train_seconds"], 1) for r in runs])]
    for which in ("final", "best"):
        rows += [(f"{which} {name}", [_text(r[which][key]) for r in runs])
                 for key, name in (("acc_top1", "top-1"), ("acc_top5", "top-5"), ("loss", "loss"))
                 if any(r[which][key] is not None for r in runs)]  # no top-5 row when every run has 5 classes or fewer
    rows.append(("best epoch", [_text(r["best"]["epoch"]) for r in runs]))
    width = max(len(name) for name, _ in rows)
    columns = [max(len(str(values[i])) for _, values in rows) for i in range(len(runs))]
    lines = [f"{name:<{width}}  " + "  ".join(f"{str(v):<{columns[i]}}" for i, v in enumerate(values)) for name, values in rows]
    lines.append(f"evaluation curves: {result['curves']}")
    return "\n".join(line.rstrip() for line in lines)


def _text(value: Any, digits: int = 4) -> str:
    return fmt(value, digits, missing="-")
