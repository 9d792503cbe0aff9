"""A network cut in two at its head: the frozen layers before it, and the head trained on what they give.

Cached-feature training (:mod:`hapi_runner.training.feature_cache`) runs the
frozen part once per image and trains the head alone. That is exact only
when the network's output *is* the head applied to the frozen part's
output: :func:`check_split` runs both ways on a batch and refuses a network
where the head is not the last step (a softmax after it, a skip around it).

The head stays a sublayer of the network throughout, so the weights trained
on features are the network's own: a checkpoint, an export or an evaluation
of the whole network sees them with nothing copied back.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import numpy as np

from ..errors import UsageError


def sublayer(network, path: str):
    """The sublayer at dotted ``path`` (``fc``, ``classifier``, ``head.2``) of ``network``."""
    layer = network
    for part in path.split("."):
        layer = getattr(layer, part)
    return layer


@contextlib.contextmanager
def head_removed(network, path: str) -> Iterator[None]:
    """Within the block, ``network``'s head at ``path`` is ``paddle.nn.Identity``, so its forward gives features."""
    import paddle

    *parents, name = path.split(".")
    parent = sublayer(network, ".".join(parents)) if parents else network
    head = getattr(parent, name)
    setattr(parent, name, paddle.nn.Identity())
    try:
        yield
    finally:
        setattr(parent, name, head)


def check_split(network, path: str, batch: np.ndarray, label: str) -> None:
    """UsageError unless ``network(batch)`` equals its head applied to its output without the head.

    Args:
        network: the whole network; run in eval mode, its mode restored.
        path: the head's sublayer name.
        batch: a few preprocessed images ``[N, C, H, W]``.
        label: how the network is named in the message (``config.model``).
    """
    import paddle

    was_training = network.training
    network.eval()
    refusal = (f"{label}'s output is not its head '{path}' applied to the output of the layers before it, so the "
               f"frozen layers cannot be run once and cached; name the network's last layer with --head, or pass "
               f"--no-feature-cache")
    try:
        with paddle.no_grad():
            images = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))
            whole = network(images).numpy()
            with head_removed(network, path):
                features = network(images)
            parts = sublayer(network, path)(features).numpy()
    # What a head fed the features may raise: Paddle's shape checks (ValueError) or the user's own code.
    except Exception as exc:
        reason = re.sub(r"\s*\(at /paddle/.*", "", " ".join(str(exc).split()))[:200] or type(exc).__name__
        raise UsageError(f"{refusal} ({type(exc).__name__}: {reason}).") from exc
    finally:
        if was_training:
            network.train()
    scale = max(1.0, float(np.abs(whole).max()))
    if parts.shape != whole.shape or not np.allclose(parts, whole, rtol=1e-4, atol=1e-4 * scale):
        raise UsageError(f"{refusal}.")


def head_network(network, path: str):
    """A ``paddle.nn.Layer`` whose forward is ``network``'s head alone, fed features.

    It holds ``network``'s own children, parameters and buffers under their
    own names, so its ``state_dict`` is the whole network's, key for key:
    a checkpoint written while training the head loads into the network.
    """
    import paddle

    class HeadNetwork(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            for name, child in network.named_children():
                self.add_sublayer(name, child)
            for name, param in network.named_parameters(include_sublayers=False):
                self.add_parameter(name, param)
            kept = network.state_dict(include_sublayers=False)
            for name, buffer in network.named_buffers(include_sublayers=False):
                self.register_buffer(name, buffer, persistable=name in kept)

        def forward(self, features):
            return sublayer(self, path)(features)

    return HeadNetwork()
