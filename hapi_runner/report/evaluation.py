"""Predictions of a run's checkpoint on its evaluation set, for the report: the one bridge to the deploy code.

Kept apart from the rest of the package so that drawing a report from
predictions (which the end of training already has) never imports the
code that rebuilds a network from a run folder.
"""

from __future__ import annotations

from typing import Any, Optional

from .predictions import Predictions, data_root
from ..runfolder.layout import BEST, RunPaths


def run_predictions(run_dir: str, checkpoint: str = "best", *, threads: Optional[str] = None, device: str = "cpu",
                    data_dir: Optional[str] = None, download: bool = True, batch_size: Optional[int] = None,
                    network: Any = None) -> Predictions:
    """Loads ``checkpoint``'s weights and evaluates them on the run's evaluation set, every image once.

    The evaluation set is the one training used: the test split, or for a
    run trained with ``val_split`` the same seeded part held out of train,
    resized as training resized it (``image_size``).

    Args:
        run_dir: a run folder.
        checkpoint: ``best``, ``last`` or a checkpoint folder; ``best`` falls
            back to ``last`` when the run has none. Defaults to ``best``.
        threads: CPU threads. Defaults to the run's setting.
        device: Defaults to ``cpu``.
        data_dir: where the evaluation files are. Defaults to the run's.
        download: allow Paddle's download. Defaults to True.
        batch_size: Defaults to the run's.
        network: the network, for a run trained on one built in Python
            (``Runner(config, network=net)``), which config.json cannot
            rebuild. Defaults to None: rebuilt from the run's config.json.
    """
    import os
    from dataclasses import replace

    from ..deploy.gradcam import dataset_cams
    from ..deploy.tasks import eval_dataset, load_run, run_logits
    from ..model.assembly import load_data

    if checkpoint == "best" and not os.path.exists(RunPaths(run_dir).checkpoint(BEST)):
        checkpoint = "last"
    run = load_run(run_dir, checkpoint=checkpoint, threads=threads, device=device, network=network)
    config = run.config
    if run.folder is not None:  # an image folder's validation part, as training chose it
        data = eval_dataset(run, None, data_dir, download)
        split = "validation images"
    elif config.val_split:
        data = load_data(replace(config, data_dir=data_dir or config.data_dir, download=download), training=False).eval
        split = f"the {config.val_split:g} of train held out for evaluation"
    else:
        data = eval_dataset(run, None, data_dir, download)
        split = "test split"
    logits = run_logits(run, data, batch_size or config.batch_size)
    probs = Predictions.from_logits(data.labels, logits).probs
    source = f"checkpoint epoch {run.epoch}, {len(data)} images of {data.spec.name} ({split}), dygraph"
    predictions = Predictions.from_dataset(data, probs, source, root=data_root(config, data_dir))
    predictions.heatmaps = dataset_cams(run.network, data)
    return predictions

