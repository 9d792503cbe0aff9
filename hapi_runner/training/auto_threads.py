"""``--threads auto`` decided by what the network costs, measured once it is built.

Before Paddle is imported the count can only be guessed from the model's
name (:func:`hapi_runner.training.environment.resolve_threads`); once the
network exists its multiply-adds per image are counted (one forward pass of
one image) and the count is set again. A network too cheap to split runs on
one thread: its per-operator work is so short that a second thread costs
more in synchronisation than it gains. The rule holds for built-in and user
networks alike.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

# Below this many multiply-adds per image, one thread. Measured on 2 cores (docs/benchmarks.md, "Threads"):
# LeNet (0.4 M) trains 2-3x faster on 1 thread than on 2, ResNet-18 on 32x32 inputs (37 M, paddle.vision's stem)
# about 1.4x faster on 2 than on 1; 10 M sits between, well clear of both.
SMALL_NETWORK_MACS = 10_000_000


class ThreadChoice(NamedTuple):
    """The thread count ``auto`` chose, and why (``macs`` None when the network was not measured)."""

    threads: int
    macs: Optional[int]

    def describe(self) -> str:
        """For the run's opening line: ``auto, 0.4 M multiply-adds per image`` or ``auto``."""
        if self.macs is None:
            return "auto"
        return f"auto: {self.macs / 1e6:.1f} M multiply-adds per image, {'below' if self.macs < SMALL_NETWORK_MACS else 'above'} " \
               f"{SMALL_NETWORK_MACS / 1e6:.0f} M"


def threads_for_cost(macs: int, cores: int) -> int:
    """1 for a network under :data:`SMALL_NETWORK_MACS` multiply-adds per image, else ``cores``."""
    return 1 if macs < SMALL_NETWORK_MACS else max(1, int(cores))


def choose_threads(network, input_shape: Sequence[int], cores: int) -> ThreadChoice:
    """Counts ``network``'s multiply-adds on one ``input_shape`` image, sets the thread count they call for, and returns it.

    Args:
        network: the built ``paddle.nn.Layer``.
        input_shape: ``[C, H, W]`` of one image as the network is fed.
        cores: the count for a network worth splitting (the cores this process may use).
    """
    from ..model.summary import count_macs
    from ..paddle_compat import set_cpu_threads
    from .paddle_import import set_thread_env

    macs = count_macs(network, input_shape)
    threads = threads_for_cost(macs, cores)
    set_cpu_threads(threads)
    set_thread_env(threads)  # what data-loading workers and later tools started from here inherit
    return ThreadChoice(threads, macs)
