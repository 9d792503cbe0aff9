"""Runs under ``python -m paddle.distributed.launch``: who writes, what every rank agrees on, exact evaluation.

``paddle.Model`` does the data parallelism itself: when the launcher's
environment names more than one process, hapi's dygraph adapter calls
``paddle.distributed.init_parallel_env()`` and wraps the network in
``paddle.DataParallel`` (NCCL on GPUs, gloo on the CPU). What is left for
hapi_runner:

* one run folder: rank 0 chooses (and creates) it, every rank is told the
  path (:func:`on_main`), and only rank 0 writes files or prints;
* evaluation that counts every sample once. ``DistributedBatchSampler``
  repeats samples so that every rank gets the same number; hapi gathers the
  predictions of all ranks and cuts the gathered tail back to the dataset's
  size, which makes its accuracy exact, but the loss each rank computes still
  includes the repeats and covers its own share alone. The evaluation loader
  (``make_loader(..., evaluation=True)``) puts a filler labelled
  :data:`~hapi_runner.datasets.pipeline.FILLER_LABEL` where a repeat would
  be, and :class:`hapi_runner.training.losses.ExactEvalCrossEntropy` leaves fillers
  out and averages the loss over all ranks, so every rank logs the same,
  exact figure (and early stopping or LR-on-plateau decide alike).

The functions that only read the launcher's environment import no Paddle:
the thread count is chosen from them before Paddle loads.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from ..errors import HapiRunnerError

T = TypeVar("T")


def world_size() -> int:
    """Processes in the job (``PADDLE_TRAINERS_NUM``, set by ``paddle.distributed.launch``); 1 without a launcher."""
    return _env_int("PADDLE_TRAINERS_NUM", 1)


def rank() -> int:
    """This process's rank in the job (``PADDLE_TRAINER_ID``); 0 without a launcher."""
    return _env_int("PADDLE_TRAINER_ID", 0)


def local_world_size() -> int:
    """Processes the launcher started on this machine (``PADDLE_LOCAL_SIZE``); 1 without a launcher."""
    return _env_int("PADDLE_LOCAL_SIZE", 1) if world_size() > 1 else 1


def is_distributed() -> bool:
    return world_size() > 1


def launched() -> bool:
    """True when ``paddle.distributed.launch`` started this process, even as its only one (it sets ``PADDLE_TRAINER_ID``)."""
    return "PADDLE_TRAINER_ID" in os.environ


def is_main() -> bool:
    """True on the process that writes the run's files and prints: rank 0, or the only process."""
    return rank() == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


def say(message: str) -> None:
    """Prints ``message`` on the main process only, so a launched job shows each line once."""
    if is_main():
        print(message, flush=True)


def ensure_initialized() -> None:
    """Starts Paddle's parallel environment if this is a launched job and nobody has yet (``paddle.Model`` does)."""
    if not is_distributed():
        return
    from ..paddle_compat import parallel_env_initialized

    if not parallel_env_initialized():
        import paddle.distributed as dist

        dist.init_parallel_env()


def on_main(fn: Callable[[], T]) -> T:
    """Runs ``fn`` on rank 0 alone and hands every rank its result.

    Decisions that must be the same everywhere and may touch the disk (which
    run folder, which checkpoint) are made once. A :class:`HapiRunnerError`
    raised by ``fn`` is raised on every rank, with the same message, so all
    of them stop with the same one line; any other failure on rank 0 still
    releases the others, which stop with a line that points at rank 0.
    """
    if not is_distributed():
        return fn()
    import paddle.distributed as dist

    ensure_initialized()
    box: list = [None]
    failure = None
    if rank() == 0:
        try:
            box[0] = ("ok", fn())
        except BaseException as exc:  # the others wait in the broadcast below: tell them before raising
            failure = exc
            if isinstance(exc, HapiRunnerError):
                box[0] = ("error", (type(exc), str(exc)))
            else:
                box[0] = ("error", (HapiRunnerError, f"rank 0 failed ({type(exc).__name__}: {exc}); see its log"))
    dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    status, value = box[0]
    if status == "error":
        raise _rebuild(*value)
    return value


def _rebuild(kind, message: str) -> HapiRunnerError:
    try:
        return kind(message)
    except Exception:  # a subclass with another constructor
        return HapiRunnerError(message)
