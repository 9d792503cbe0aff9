"""Threads and devices: the choices that must be made before training starts.

The thread count has to be in the environment before ``import paddle``:
Paddle sets ``OMP_NUM_THREADS=1`` at import when it is unset, and oneDNN
reads it once. This module therefore imports Paddle only inside functions.
"""

from __future__ import annotations

import logging
import os

from .errors import HapiRunnerError
from .paddle_compat import paddle_imported, set_cpu_threads, set_thread_env

log = logging.getLogger("hapi_runner")

# Models small enough that a second thread costs more in synchronisation than
# it gains: on 2 cores LeNet trained 2x slower with 2 threads than with 1.
SINGLE_THREAD_MODELS = frozenset({"lenet"})

GPU_INSTALL_HINT = (
    "install the GPU build (pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu), "
    "or drop --gpu to train on the CPU"
)


def resolve_threads(setting: str, model: str) -> int:
    """The CPU thread count for ``setting`` (``auto`` or a number).

    ``auto``: an ``OMP_NUM_THREADS`` the user exported (before Paddle was
    imported) wins; otherwise 1 for :data:`SINGLE_THREAD_MODELS`, and every
    core for the rest.
    """
    if setting != "auto":
        return int(setting)
    user_value = os.environ.get("OMP_NUM_THREADS")
    if user_value and user_value.isdigit() and int(user_value) > 0 and not paddle_imported():
        return int(user_value)
    if model in SINGLE_THREAD_MODELS:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def configure_threads(setting: str, model: str) -> int:
    """Applies the thread count: through the environment if Paddle is not yet imported."""
    count = resolve_threads(setting, model)
    if not paddle_imported():
        set_thread_env(count)
    elif os.environ.get("OMP_NUM_THREADS") != str(count):
        if not set_cpu_threads(count):
            log.warning("threads: Paddle was imported before hapi_runner chose %d threads; "
                        "set OMP_NUM_THREADS=%d before importing paddle", count, count)
    return count


def select_device(device: str, require_gpu: bool = False) -> str:
    """Picks and sets the Paddle device; returns ``cpu`` or ``gpu:N``.

    Args:
        device: ``auto`` (a GPU if one is visible), ``cpu``, ``gpu`` or ``gpu:N``.
        require_gpu: fail instead of falling back to the CPU (``--gpu``).

    Raises:
        HapiRunnerError: a GPU was asked for and this build or machine has none.
    """
    import paddle

    compiled = paddle.device.is_compiled_with_cuda()
    count = paddle.device.cuda.device_count() if compiled else 0
    want = "gpu" if require_gpu and device == "auto" else device
    if want == "auto":
        want = "gpu" if count else "cpu"
    if want.startswith("gpu"):
        if not compiled:
            raise HapiRunnerError(f"a GPU was asked for, but this Paddle {paddle.__version__} is a CPU-only build; {GPU_INSTALL_HINT}.")
        if count == 0:
            raise HapiRunnerError("a GPU was asked for, but none is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or drop --gpu to train on the CPU.")
        index = int(want.split(":")[1]) if ":" in want else 0
        if index >= count:
            raise HapiRunnerError(f"device gpu:{index} was asked for, but only {count} GPU(s) are visible (gpu:0..gpu:{count - 1}).")
        want = f"gpu:{index}"
    paddle.set_device(want)
    return want
