"""Optimizers and learning-rate schedules from a TrainConfig.

hapi's built-in ``LRScheduler`` callback steps a scheduler after every batch,
so every schedule here is expressed in steps (epochs x steps per epoch).
"""

from __future__ import annotations

from typing import Tuple


def build_scheduler(config, steps_per_epoch: int):
    """The learning rate: a float for ``constant`` without warm-up, else a ``paddle.optimizer.lr.LRScheduler``.

    Args:
        config: a TrainConfig (uses ``lr``, ``lr_schedule``, ``lr_step_epochs``,
            ``lr_gamma``, ``warmup_epochs``, ``epochs``).
        steps_per_epoch: batches per epoch on this process.
    """
    from paddle.optimizer import lr as lrs

    total = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch
    if config.lr_schedule == "constant":
        schedule = config.lr
    elif config.lr_schedule == "cosine":
        schedule = lrs.CosineAnnealingDecay(config.lr, T_max=max(1, total - warmup))
    elif config.lr_schedule == "step":
        schedule = lrs.StepDecay(config.lr, step_size=config.lr_step_epochs[0] * steps_per_epoch, gamma=config.lr_gamma)
    else:  # multistep
        milestones = [e * steps_per_epoch for e in config.lr_step_epochs]
        schedule = lrs.MultiStepDecay(config.lr, milestones=milestones, gamma=config.lr_gamma)
    if warmup:
        schedule = lrs.LinearWarmup(schedule, warmup_steps=warmup, start_lr=0.0, end_lr=config.lr)
    return schedule


def build_optimizer(config, parameters, steps_per_epoch: int) -> Tuple[object, object]:
    """Builds the optimizer named by ``config.optimizer``.

    ``momentum`` (the default, as seed 002) and ``sgd`` apply
    ``weight_decay`` as ``paddle.regularizer.L2Decay``; ``adam`` adds it to
    the gradient the same way; ``adamw`` decouples it.

    Returns:
        ``(optimizer, learning_rate)``, the latter a float or the LRScheduler.
    """
    import paddle
    from paddle.regularizer import L2Decay

    lr = build_scheduler(config, steps_per_epoch)
    decay = L2Decay(config.weight_decay) if config.weight_decay else None
    name = config.optimizer
    if name == "momentum":
        opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=config.momentum, parameters=parameters, weight_decay=decay)
    elif name == "sgd":
        opt = paddle.optimizer.SGD(learning_rate=lr, parameters=parameters, weight_decay=decay)
    elif name == "adam":
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=parameters, weight_decay=decay)
    else:
        opt = paddle.optimizer.AdamW(learning_rate=lr, parameters=parameters, weight_decay=config.weight_decay)
    return opt, lr
