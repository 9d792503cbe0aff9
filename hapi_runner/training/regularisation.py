"""The training techniques a TrainConfig asks for, built for the Runner: smoothed loss, mixing, augmentation, EMA.

Each builder returns None (or leaves things as they are) when its technique
is off, so a run with the defaults trains exactly as it did before these
options existed. Only training sees the augmentations and the mixing; the
evaluation transform and loader are never touched.
"""

from __future__ import annotations

from typing import List

from .accumulation import optimizer_steps_per_epoch


def build_run_loss(config, class_weights=None):
    """The loss of ``config``: smoothed cross-entropy, weighted by ``class_weights`` (or None), taking soft
    targets when batches are mixed."""
    from .losses import build_loss

    return build_loss(config.label_smoothing, class_weights, soft_targets=config.mixes)


def build_mixing(config, num_classes: int):
    """The :class:`~hapi_runner.datasets.mixing.BatchMixing` of the training loader, or None when nothing is mixed."""
    if not config.mixes:
        return None
    from ..datasets.mixing import BatchMixing

    return BatchMixing(num_classes, mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, prob=config.mix_prob)


def add_training_augmentation(train_data, config) -> None:
    """Puts RandAugment and Random Erasing into the training set's transform (the evaluation set has its own)."""
    transform = train_data.transform
    if config.randaugment is not None:
        from ..datasets.randaugment import RandAugment

        transform.randaugment = RandAugment(config.randaugment)
    if config.random_erasing > 0:
        from ..datasets.erasing import RandomErasing

        transform.erasing = RandomErasing(config.random_erasing)


def build_ema(config):
    """The :class:`~hapi_runner.callbacks.ema.ModelEMA` of ``config``, or None without ``--ema``."""
    if config.ema is None:
        return None
    from ..callbacks.ema import ModelEMA

    return ModelEMA(config.ema)


def steps_per_epoch(config, batches: int) -> int:
    """Optimizer steps in an epoch of ``batches`` batches: what the LR schedule is laid out in."""
    return optimizer_steps_per_epoch(batches, config.accumulate_grad_batches)


def describe_techniques(config, mixing=None) -> List[str]:
    """The lines a run prints at its start about the techniques that change what its logs mean."""
    lines: List[str] = []
    if mixing is not None:
        lines.append(mixing.describe())
    if config.ema is not None:
        lines.append(f"EMA of the weights (decay {config.ema:g}): evaluation, 'best', the export and the final "
                     f"figures use the EMA weights; checkpoints hold both sets (model.pdparams: training weights).")
    if config.accumulate_grad_batches > 1:
        lines.append(f"gradient accumulation: one optimizer step per {config.accumulate_grad_batches} batches "
                     f"(effective batch {config.accumulate_grad_batches * config.batch_size}); the LR schedule "
                     f"counts optimizer steps.")
    return lines

