"""Threads and devices: the choices that must be made before training starts.

The thread count has to be in the environment before ``import paddle``:
Paddle sets ``OMP_NUM_THREADS=1`` at import when it is unset, and oneDNN
reads it once. This module therefore imports Paddle only inside functions.
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

from .distributed import launched, local_world_size
from ..errors import HapiRunnerError, UsageError
from ..paddle_compat import set_cpu_threads
from .paddle_import import import_paddle_without_thread_warning, paddle_imported, set_thread_env

log = logging.getLogger("hapi_runner")

# The ``--threads auto`` rule, decided by measurement (bench/run.py --only
# threads; the figures and the reasoning are in docs/benchmarks.md): models so
# small that a second thread costs more in synchronisation than it gains run on
# one thread (on 2 cores LeNet trains 2-3x slower on 2 threads than on 1, at
# every batch size from 64 to 1024); everything else gets every core (ResNet-18
# trains about 1.4x faster on 2 threads than on 1 on an idle machine).
SINGLE_THREAD_MODELS = frozenset({"lenet"})

GPU_INSTALL_HINT = (
    "install the GPU build (pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu), "
    "or train on the CPU (--device cpu, without --gpu)"
)


def resolve_threads(setting: str, model: str) -> int:
    """The CPU thread count for ``setting`` (``auto`` or a number).

    ``auto``: an ``OMP_NUM_THREADS`` the user exported (before Paddle was
    imported) wins; otherwise 1 for :data:`SINGLE_THREAD_MODELS`, and every
    core for the rest, shared out among the processes
    ``paddle.distributed.launch`` started on this machine.
    """
    if setting != "auto":
        return int(setting)
    exported = exported_thread_count()
    if exported is not None:
        return exported
    if model in SINGLE_THREAD_MODELS:
        return 1
    return auto_core_count()


def exported_thread_count() -> Optional[int]:
    """The ``OMP_NUM_THREADS`` the user exported, before Paddle (which sets it) was imported; else None."""
    user_value = os.environ.get("OMP_NUM_THREADS")
    if user_value and user_value.isdigit() and int(user_value) > 0 and not paddle_imported():
        return int(user_value)
    return None


def auto_core_count() -> int:
    """The cores this process may use, shared out among the processes ``paddle.distributed.launch`` started here."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // local_world_size())


def configure_threads(setting: str, model: str) -> int:
    """Applies the thread count: through the environment if Paddle is not yet imported, then imports Paddle.

    Paddle cautions against more than one OpenMP thread when it is
    imported; here the count is a deliberate choice, so that caution is left
    out (``paddle_import.import_paddle_without_thread_warning``).
    """
    count = resolve_threads(setting, model)
    if not paddle_imported():
        set_thread_env(count)
        import_paddle_without_thread_warning()
    elif os.environ.get("OMP_NUM_THREADS") != str(count):
        if not set_cpu_threads(count):
            log.warning("threads: Paddle was imported before hapi_runner chose %d threads; "
                        "set OMP_NUM_THREADS=%d before importing paddle", count, count)
    return count


def select_device(device: str, require_gpu: bool = False) -> str:
    """Picks and sets the Paddle device; returns ``cpu`` or ``gpu:N``.

    Under ``paddle.distributed.launch`` the card is the launcher's
    (:func:`launcher_gpu`), even for a single process.

    Args:
        device: ``auto`` (a GPU if one is usable), ``cpu``, ``gpu`` or ``gpu:N``.
        require_gpu: fail instead of falling back to the CPU (``--gpu``). Defaults to False.

    Raises:
        HapiRunnerError: a GPU was asked for and this build or machine has none.
        UsageError: ``gpu:N`` under the launcher, which gives each process its own card.
    """
    import paddle

    compiled = paddle.device.is_compiled_with_cuda()
    count, query_error = visible_gpu_count() if compiled else (0, None)
    want = "gpu" if require_gpu and device == "auto" else device
    if want == "auto":
        want = "gpu" if count else "cpu"
    if want.startswith("gpu"):
        if not compiled:
            raise HapiRunnerError(f"a GPU was asked for, but this Paddle {paddle.__version__} is a CPU-only build; {GPU_INSTALL_HINT}.")
        if count == 0:
            raise HapiRunnerError("a GPU was asked for, but none is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), "
                                  "or train on the CPU (--device cpu, without --gpu).") from query_error
        index = _gpu_index(want)
        if index >= count:
            raise HapiRunnerError(f"device gpu:{index} was asked for, but only {count} GPU(s) are visible (gpu:0..gpu:{count - 1}).")
        want = f"gpu:{index}"
    paddle.set_device(want)
    return want


def visible_gpu_count() -> Tuple[int, Optional[BaseException]]:
    """``(count, error)``: the GPUs Paddle can use, and the error its query raised (None if it answered).

    A GPU build on a machine with the driver but no usable card (or with
    ``CUDA_VISIBLE_DEVICES=-1``) can raise from the device query instead of
    answering 0; that is read as no GPU, so ``--device auto`` trains on the CPU.
    """
    import paddle

    try:
        return int(paddle.device.cuda.device_count()), None
    except (RuntimeError, OSError) as exc:  # Paddle's CUDA errors: RuntimeError, or OSError for driver failures
        return 0, exc


def _gpu_index(want: str) -> int:
    """The card for ``gpu`` or ``gpu:N``: the launcher's card under ``paddle.distributed.launch``, else N (default 0)."""
    card = launcher_gpu()
    if ":" not in want:
        return 0 if card is None else card
    if card is not None:
        raise UsageError(
            f"--device {want} names a card, but paddle.distributed.launch gives each process its own "
            f"(FLAGS_selected_gpus={card} here); pass --device gpu and choose the cards with the launcher's --devices.")
    return int(want.split(":")[1])


def launcher_gpu() -> Optional[int]:
    """The card ``paddle.distributed.launch`` gave this process, None outside the launcher.

    The launcher leaves every card visible and names each process's own in
    ``FLAGS_selected_gpus`` (what ``ParallelEnv().device_id`` reads), also
    when it starts one process (``--devices 3``); ``gpu:0`` would put every
    process on the first card. It is read only where the launcher's
    environment (``PADDLE_TRAINER_ID``) is present.
    """
    if not launched():
        return None
    selected = os.environ.get("FLAGS_selected_gpus", "").split(",")[0].strip()
    return int(selected) if selected.isdigit() else None


def default_num_workers(device: str) -> int:
    """DataLoader workers when ``--num-workers`` is not given: 0 on the CPU, ``min(4, cores)`` on a GPU.

    The in-memory batched pipeline costs a few per cent of a CPU training
    step (docs/benchmarks.md), and a worker process would take a core from
    the math threads; on a GPU the host is otherwise idle, so workers hide
    the transform behind the device's step.
    """
    if device == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cores)


def amp_configs(level, dtype: str = "float16"):
    """``paddle.Model.prepare``'s ``amp_configs`` for AMP ``level`` (None: off) in ``dtype``.

    bfloat16 has float32's range, so it runs without loss scaling; and hapi's
    own O2 preparation casts to float16 only, so an O2 bfloat16 model is
    prepared at O1 here and converted by ``paddle_compat.set_amp_dtype``.
    """
    if not level:
        return None
    if dtype == "float16":
        return {"level": level}
    return {"level": "O1", "init_loss_scaling": 1.0, "use_dynamic_loss_scaling": False}


# cuDNN settings for a GPU run: an exhaustive search for the fastest
# convolution algorithm per shape (the shapes of a training run repeat, so it
# pays for itself after a few steps; Paddle's analogue of
# torch.backends.cudnn.benchmark) and, with AMP, the persistent spatial
# batch-norm kernels PaddleClas enables for mixed-precision training.
CUDNN_FLAGS = {"FLAGS_cudnn_exhaustive_search": True}
CUDNN_AMP_FLAGS = {"FLAGS_cudnn_batchnorm_spatial_persistent": True}


def configure_gpu_flags(device: str, tuning: bool = True, amp: bool = False, deterministic: bool = False) -> dict:
    """Sets :data:`CUDNN_FLAGS` (and, with ``amp``, :data:`CUDNN_AMP_FLAGS`) on a GPU; nothing on the CPU.

    cuDNN refuses an exhaustive search together with deterministic
    algorithms (every convolution raises), so when determinism is asked for,
    by ``deterministic`` or by a ``FLAGS_cudnn_deterministic`` the user set,
    the search is skipped (said once) and ``FLAGS_cudnn_deterministic`` is set.

    Args:
        device: ``cpu`` or ``gpu:N``.
        tuning: set the tuning flags. Defaults to True.
        amp: also set :data:`CUDNN_AMP_FLAGS`. Defaults to False.
        deterministic: ask cuDNN for deterministic algorithms (``--deterministic``). Defaults to False.

    Returns:
        The flags set.
    """
    if not device.startswith("gpu"):
        return {}
    import paddle

    flags = {**CUDNN_FLAGS, **(CUDNN_AMP_FLAGS if amp else {})} if tuning else {}
    if deterministic or determinism_requested():
        if flags.pop("FLAGS_cudnn_exhaustive_search", None):
            log.warning("cuDNN: deterministic algorithms asked for, so the exhaustive convolution search is skipped.")
        flags["FLAGS_cudnn_deterministic"] = True
    if not flags:
        return {}
    try:
        paddle.set_flags(flags)
    except (ValueError, RuntimeError) as exc:  # a build without one of them
        log.warning("cuDNN flags not set (%s); training goes on with Paddle's defaults.", exc)
        return {}
    return flags


def determinism_requested() -> bool:
    """Whether ``FLAGS_cudnn_deterministic`` is on: exported before Paddle started, or set through ``paddle.set_flags``."""
    import paddle

    try:
        return bool(paddle.get_flags(["FLAGS_cudnn_deterministic"])["FLAGS_cudnn_deterministic"])
    except ValueError:  # a CPU build has no cuDNN flags: the environment is all there is
        return os.environ.get("FLAGS_cudnn_deterministic", "").strip().lower() in ("1", "true")
