"""What a run's first lines say about the network and the data, as timm's start-up log does."""

from __future__ import annotations

from typing import Tuple


def parameter_count(network) -> Tuple[int, int]:
    """``(all, trainable)`` parameter counts of ``network``; BatchNorm's running statistics are not parameters here."""
    total = trainable = 0
    for name, parameter in network.named_parameters():
        if name.rsplit(".", 1)[-1] in ("_mean", "_variance"):
            continue  # Paddle keeps BatchNorm's running statistics as parameters; they are not learned
        size = 1
        for side in parameter.shape:
            size *= int(side)
        total += size
        trainable += 0 if parameter.stop_gradient else size
    return total, trainable


def describe_parameters(network) -> str:
    """``11.17M parameters`` (with ``, 5.1k trainable`` when some are frozen)."""
    total, trainable = parameter_count(network)
    text = f"{_short(total)} parameters"
    return text if trainable == total else f"{text}, {_short(trainable)} trainable"


def _short(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    if count >= 10_000:
        return f"{count / 1e3:.1f}k"
    return str(count)


def describe_data(train_data) -> str:
    """The resolved input of an in-memory dataset: shape, normalisation and training augmentation, in one line.

    A folder dataset says the same in its own first note (``datasets.folder``).
    """
    spec, transform = train_data.spec, train_data.transform
    shape = "x".join(str(s) for s in train_data.sample_shape)
    stats = ", ".join(f"{m:.3f}/{s:.3f}" for m, s in zip(spec.mean, spec.std))
    extras = [name for name, on in (("RandAugment", getattr(transform, "randaugment", None) is not None),
                                    ("random erasing", getattr(transform, "erasing", None) is not None)) if on]
    augment = " + ".join([getattr(transform, "augment", "none"), *extras])
    return f"data: {shape} per image, mean/std {stats} (of pixel/255), training augmentation: {augment}"
