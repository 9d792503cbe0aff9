"""A ``paddle.io.DataLoader`` that neither loses an epoch to dying workers nor hangs on a bad batch.

Two DataLoader faults, both seen with Paddle 3.3.1:

* Worker processes die for reasons that have nothing to do with the data: the
  usual one is a small ``/dev/shm`` (Docker gives 64 MB by default), where a
  worker writing a batch into shared memory gets a bus error. Paddle raises
  ``SystemError: (Fatal) Blocking queue is killed ...`` a few seconds later
  (it polls its workers) and the epoch is lost. :class:`RobustDataLoader`
  says so in one warning line and carries on with the rest of the epoch:
  first with ``use_shared_memory=False``, then, if workers fail again, in the
  main process (``num_workers=0``). The fallback sticks for later epochs.
* With ``num_workers=0`` Paddle reads batches in a thread; when the dataset or
  the collate function raises, that thread dies without closing its queue and
  the training loop waits forever. Here the exception is caught in the thread,
  the queue is closed, and the exception is raised in the training loop.

Paddle also installs a SIGCHLD handler that raises the same failure in
whatever the main thread is doing when a worker dies, the forward pass
included, where no loader can catch it. While a RobustDataLoader runs
workers, that handler's error is logged instead: the loader's own check of
its workers (every ``timeout`` seconds, 5 by default) finds the dead one and
falls back.

A worker that raises an ordinary exception (a bug in a dataset) looks like a
dead worker to the main process; the fallback then ends in the main process,
where the exception surfaces with its own type and message.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Iterator, Optional

from paddle.io import DataLoader, Dataset, IterableDataset

log = logging.getLogger("hapi_runner")

# What Paddle's messages say when a worker process is gone (3.x: "Blocking queue
# is killed"; the SIGCHLD check: "DataLoader process ... exited unexpectedly";
# the bus-error handler: "insufficient shared memory").
WORKER_FAILURE_HINTS = ("blocking queue is killed", "dataloader worker", "dataloader process", "exited unexpectedly",
                        "shared memory", "/dev/shm", "bus error", "workers exit unexpectedly")


def is_worker_failure(exc: BaseException) -> bool:
    """True for the RuntimeError/SystemError Paddle raises when DataLoader workers fail."""
    if not isinstance(exc, (RuntimeError, SystemError)):
        return False
    text = str(exc).lower()
    return any(hint in text for hint in WORKER_FAILURE_HINTS)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _tolerate_worker_sigchld() -> None:
    """Wraps Paddle's SIGCHLD handler so that a dead worker is reported by the loader, not raised mid-step."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCHLD"):
        return
    current = signal.getsignal(signal.SIGCHLD)
    if not callable(current) or getattr(current, "hapi_runner_tolerant", False):
        return

    def handler(signum, frame):
        try:
            current(signum, frame)
        except (RuntimeError, SystemError) as exc:
            if not is_worker_failure(exc):
                raise
            log.debug("DataLoader worker exited (%s); the loader will notice and fall back.", _first_line(exc))

    handler.hapi_runner_tolerant = True
    signal.signal(signal.SIGCHLD, handler)


class _Guard:
    """Catches the first exception of the reading thread; afterwards every batch is None, which ends the epoch."""

    def __init__(self) -> None:
        self.error: Optional[BaseException] = None

    def call(self, fn: Callable, arg: Any) -> Any:
        if self.error is not None:
            return None
        try:
            return fn(arg)
        except Exception as exc:  # noqa: BLE001 - re-raised in the training loop by RobustDataLoader
            self.error = exc
            return None


class _GuardedDataset(Dataset):
    def __init__(self, dataset, guard: _Guard):
        super().__init__()
        self.dataset, self.guard = dataset, guard

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.guard.call(self.dataset.__getitem__, index)


class RobustDataLoader(DataLoader):
    """``paddle.io.DataLoader`` (same arguments) that falls back when its workers die.

    On a worker failure mid-epoch the batches already delivered are skipped
    on the new iterator, so the consumer sees every batch of the epoch once.
    That needs a batch sampler that repeats its order for the same epoch:
    ``DistributedBatchSampler`` (reset to the epoch it started from) and
    unshuffled samplers do.
    """

    def __iter__(self) -> Iterator[Any]:
        sampler = getattr(self, "batch_sampler", None)
        start_epoch = getattr(sampler, "epoch", None)
        delivered = 0
        while True:
            guard = _Guard() if self.num_workers == 0 else None
            try:
                for i, batch in enumerate(self._paddle_iter(guard)):
                    if i < delivered:
                        continue  # already given out before the failure
                    delivered += 1
                    yield batch
                if guard is not None and guard.error is not None:
                    raise guard.error
                return
            except (RuntimeError, SystemError) as exc:
                if self.num_workers == 0 or not is_worker_failure(exc):
                    raise
                self._fall_back(exc)
                if start_epoch is not None and hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(start_epoch)  # its shuffle advanced the epoch: replay the same order

    def _paddle_iter(self, guard: Optional[_Guard]):
        """Paddle's own iterator; in the main process with the dataset and collate function guarded."""
        if guard is None:
            iterator = DataLoader.__iter__(self)  # starts the workers, and Paddle's SIGCHLD handler with them
            _tolerate_worker_sigchld()
            return iterator
        from paddle.io.dataloader.collate import default_collate_fn, default_convert_fn

        dataset, collate = self.dataset, self.collate_fn
        collate_fn = collate or (default_collate_fn if self.auto_collate_batch else default_convert_fn)
        try:  # the iterator takes both when it is made; the loader keeps its own
            if not isinstance(dataset, IterableDataset):
                self.dataset = _GuardedDataset(dataset, guard)
            self.collate_fn = lambda batch: guard.call(collate_fn, batch)
            return DataLoader.__iter__(self)
        finally:
            self.dataset, self.collate_fn = dataset, collate

    def _fall_back(self, exc: BaseException) -> None:
        from ..paddle_compat import drop_persistent_workers

        drop_persistent_workers(self)  # a persistent iterator whose worker died cannot be reset
        if self.use_shared_memory:
            self.use_shared_memory = False
            log.warning("DataLoader worker processes failed (%s); a small /dev/shm is the usual cause: "
                        "continuing with use_shared_memory=False.", _first_line(exc))
        else:
            workers, self.num_workers = self.num_workers, 0
            log.warning("DataLoader worker processes failed again (%s); continuing in the main process "
                        "(num_workers=0 instead of %d).", _first_line(exc), workers)
