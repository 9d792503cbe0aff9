"""Out-of-sample class probabilities by K-fold cross-fitting: K short trainings, each predicting the images it did not see.

Every training image is predicted by the one model (of K) trained without
it; every validation image, which no model trained on, gets the mean of the
K models' probabilities. Each model is built by the :class:`Runner` from the
same config (network, optimiser, loss, augmentation) and trained with
``paddle.Model.fit`` on its K-1 folds; nothing is written to a run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..config.checks import check_int
from ..errors import UsageError


@dataclass
class CrossFit:
    """What :func:`cross_fit` returns.

    Attributes:
        train, val: the datasets.
        train_probs, val_probs: ``[n, K]`` out-of-sample probabilities.
        folds: the fold of each training image.
        accuracy: out-of-sample top-1 accuracy against the given labels, training images.
    """

    train: object
    val: object
    train_probs: np.ndarray
    val_probs: Optional[np.ndarray]
    folds: np.ndarray
    accuracy: float


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each example: each class dealt round the folds in a seeded order.

    Raises:
        UsageError: fewer than 2 folds, or more folds than images.
    """
    check_int("folds", folds, minimum=2)
    if folds > len(labels):
        raise UsageError(f"folds {folds} is more than the {len(labels)} training images; choose 2..{len(labels)}.")
    rng = np.random.default_rng([seed, 21])
    assignment = np.zeros(len(labels), dtype=np.int64)
    start = 0
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        assignment[members[rng.permutation(len(members))]] = (np.arange(len(members)) + start) % folds
        start += len(members)  # the next class starts where this one stopped, so small classes spread evenly
    return assignment


def _fit_fold(runner, config, keep: np.ndarray, held: np.ndarray):
    """``runner``'s fresh model trained on ``keep``; returns the probabilities of ``held`` and of the validation set."""
    from ..callbacks.step_lr import OptimizerStepLR

    train = runner.train_data.subset(keep)
    loader = runner.loader(train, shuffle=True, mixing=runner.mixing)
    # The schedule steps per optimizer step, as in training; it was sized for the whole training set,
    # so a fold (K-1 of K parts) ends it early, at a slightly higher rate than a full run's last epoch.
    runner.model.fit(loader, epochs=config.epochs, verbose=0, callbacks=[OptimizerStepLR()],
                     accumulate_grad_batches=config.accumulate_grad_batches)
    plain = runner.eval_data.transform  # evaluation's crop, no augmentation
    held_probs = runner.predict(runner.train_data.subset(held, transform=plain))
    return held_probs, runner.predict(runner.eval_data)


def cross_fit(config, folds: int = 3, progress: Callable[[str], None] = print) -> CrossFit:
    """Out-of-sample probabilities of every training and validation image of ``config``'s data.

    Args:
        config: a ``TrainConfig``: data, network and training flags (``epochs`` per fold).
        folds: K, the number of trainings. Defaults to 3.
        progress: called with one line per fold. Defaults to ``print``.
    """
    from ..training.runner import Runner

    check_int("folds", folds, minimum=2)
    runner = Runner(config)  # a new Runner per fold: fresh weights and optimiser from the same seed
    train, val = runner.train_data, runner.eval_data
    assignment = stratified_folds(train.labels, folds, config.seed)
    train_probs = np.zeros((len(train), len(train.class_names)), dtype=np.float64)
    val_probs = np.zeros((len(val), len(train.class_names)), dtype=np.float64)
    for fold in range(folds):
        if fold:
            runner = Runner(config)
        keep, held = np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)
        held_probs, fold_val = _fit_fold(runner, config, keep, held)
        train_probs[held] = held_probs
        val_probs += fold_val / folds
        agree = float((held_probs.argmax(axis=1) == train.labels[held]).mean())
        progress(f"fold {fold + 1}/{folds}: trained on {len(keep)} images for {config.epochs} epoch(s); "
                 f"top-1 on the {len(held)} held out: {agree:.3f}")
    accuracy = float((train_probs.argmax(axis=1) == train.labels).mean())
    return CrossFit(train, val, train_probs, val_probs, assignment, accuracy)
