"""Two-phase fine-tuning, as fastai's ``fine_tune``: the classifier alone on a frozen backbone, then every layer.

``--fine-tune F,U`` trains F epochs with the backbone frozen (the head on
cached features, :mod:`hapi_runner.training.feature_cache`, unless
``--no-feature-cache``), then U epochs of the whole network in dygraph, the
backbone at ``--backbone-lr-mult`` times the classifier's rate. Each phase
has its own optimizer and its own warm-up and schedule (``--warmup-epochs``,
``--lr-schedule``) laid out over its own epochs, so a cosine reaches its end
in both. It is one run: one folder, one ``metrics.csv`` (with a ``phase``
column), checkpoints numbered across both phases; a resumed run continues in
the phase its checkpoint was written in.
"""

from __future__ import annotations

import copy
from typing import Any, List

from ..runfolder.layout import epoch_of
from .distributed import say

FROZEN, UNFROZEN = "frozen", "unfrozen"


def first_phase(config):
    """The config whose ``epochs`` the first optimizer's schedule spans: F with ``fine_tune``, else the run's."""
    if config.fine_tune is None:
        return config
    return _spanning(config, config.fine_tune[0])


def _spanning(config, epochs: int):
    """A copy of ``config`` with ``epochs`` set, unchecked: it only lays out a schedule (checking would reset it to F+U)."""
    schedule = copy.copy(config)
    schedule.epochs = int(epochs)
    return schedule


def enter_phase_of(runner, checkpoint_folder: str) -> None:
    """Before a resume: sets up the unfrozen phase when the checkpoint was written in it (its optimizer is that phase's)."""
    cfg = runner.config
    epoch = epoch_of(checkpoint_folder)
    if cfg.fine_tune is not None and epoch is not None and epoch > cfg.fine_tune[0]:
        unfreeze(runner)


def unfreeze(runner) -> None:
    """Makes every layer trainable (batch norms back on batch statistics) and prepares the second phase's optimizer."""
    from ..model.finetune import apply_finetuning, describe_finetuning
    from ..paddle_compat import keep_batch_norm_statistics

    cfg = runner.config
    network = runner.network
    for param in network.parameters():
        param.stop_gradient = False
    keep_batch_norm_statistics(network.sublayers(), keep=False)
    report = apply_finetuning(network, False, cfg.backbone_lr_mult)
    runner.prepare(report.pop("trainable"), _spanning(cfg, cfg.fine_tune[1]))
    runner.finetuning = report
    runner.phase = UNFROZEN
    say(f"hapi_runner: {describe_finetuning(report)}")


def fit_in_phases(runner, done: int, callbacks: List[Any]) -> None:
    """Trains from epoch ``done``: what is left of the frozen phase, then the unfrozen one."""
    from ..runfolder.resume import set_epoch_offset
    from .feature_cache import fit_frozen

    frozen, unfrozen = runner.config.fine_tune
    if done < frozen:
        say(f"hapi_runner: phase 1 of 2, epochs {done + 1}-{frozen}: the classifier alone, the backbone frozen")
        runner.history.phase = FROZEN
        # The export belongs to the end of the run (or to each best, with export_on_best), not to the end of a phase.
        first = [c for c in callbacks if c is not runner.exporter or runner.config.export_on_best]
        fit_frozen(runner, frozen - done, first)
        if runner.early_stopping is not None and runner.early_stopping.stopped_early:
            return  # early stopping ends the run, not just the phase
        done = frozen
    if getattr(runner, "phase", None) != UNFROZEN:
        unfreeze(runner)
    set_epoch_offset([*callbacks, runner.seeder], done)
    for callback in callbacks:  # the second fit continues the run: no callback starts afresh
        if hasattr(callback, "restored"):
            callback.restored = True
    runner.history.phase = UNFROZEN
    say(f"hapi_runner: phase 2 of 2, epochs {done + 1}-{frozen + unfrozen}: every layer")
    runner.fit_images(frozen + unfrozen - done, callbacks)
