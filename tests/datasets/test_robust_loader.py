"""DataLoader workers that die (a small /dev/shm): detected, said in one line, retried, never a hang."""

import contextlib
import faulthandler
import logging
import os
import signal
import sys

import numpy as np
import paddle
import pytest
from paddle.io import Dataset, DistributedBatchSampler

from hapi_runner.datasets.robust_loader import RobustDataLoader, is_worker_failure

# Paddle polls its workers every `timeout` seconds (5 by default); 1 keeps these tests short.
POLL = 1


@contextlib.contextmanager
def deadline(seconds):
    """Fails the test instead of hanging it (pytest has no timeout of its own here).

    SIGALRM interrupts a wait in Python; a wait inside Paddle's C++ queue does
    not see it, so faulthandler ends the whole process (with every thread's
    stack) a little later as the last resort.
    """
    def expired(signum, frame):
        raise TimeoutError(f"the DataLoader did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds + 30, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class DyingDataset(Dataset):
    """Sample i is the number i; a worker process reading ``die_at`` exits on the spot.

    ``once``: only the first worker to get there dies (a marker file records it),
    as a worker killed by a bus error would; otherwise every worker dies there.
    """

    def __init__(self, marker, die_at=20, once=True, n=64):
        super().__init__()
        self.marker, self.die_at, self.once, self.n = str(marker), die_at, once, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.die_at and paddle.io.get_worker_info() is not None:
            if not (self.once and os.path.exists(self.marker)):
                open(self.marker, "w").close()
                os._exit(3)  # no exception, no cleanup: what the kernel does to a worker on SIGBUS
        return np.full([1], i, np.float32)


def samples(batch):
    return [int(v) for v in np.asarray(batch[0] if isinstance(batch, list) else batch).ravel()]


def epoch_order(n, batch_size, epoch):
    sampler = DistributedBatchSampler(range(n), batch_size=batch_size, shuffle=True)
    sampler.set_epoch(epoch)
    return [i for batch in sampler for i in batch]


def hapi_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "hapi_runner" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("once, expected_workers, lines", [
    (True, 2, ["continuing with use_shared_memory=False"]),
    (False, 0, ["continuing with use_shared_memory=False", "continuing in the main process (num_workers=0 instead of 2)"]),
])
def test_a_dead_worker_is_replaced_and_every_batch_arrives_once(tmp_path, caplog, once, expected_workers, lines):
    dataset = DyingDataset(tmp_path / "died", once=once)
    sampler = DistributedBatchSampler(dataset, batch_size=8, shuffle=True)
    sampler.set_epoch(5)
    loader = RobustDataLoader(dataset, batch_sampler=sampler, num_workers=2, timeout=POLL, return_list=True)
    with caplog.at_level(logging.WARNING, logger="hapi_runner"), deadline(60):
        got = [i for batch in loader for i in samples(batch)]
    assert got == epoch_order(64, 8, 5)  # the same batches, in the order an unbroken epoch has
    assert sampler.epoch == 6  # and the sampler ends where an unbroken epoch leaves it
    assert (loader.num_workers, loader.use_shared_memory) == (expected_workers, False)
    warnings = hapi_warnings(caplog)
    assert len(warnings) == len(lines)
    for message, line in zip(warnings, lines):
        assert "DataLoader worker processes failed" in message and line in message and "\n" not in message
    with deadline(60):  # the fallback sticks: the next epoch runs without a failure
        caplog.clear()
        assert sorted(i for batch in loader for i in samples(batch)) == list(range(64))
    assert hapi_warnings(caplog) == []


@pytest.mark.parametrize("once", [True, False])
def test_persistent_workers_are_replaced_too(tmp_path, once):
    """A persistent iterator whose worker died cannot be reset; the next epochs must get new workers (or none)."""
    dataset = DyingDataset(tmp_path / "died", once=once)
    sampler = DistributedBatchSampler(dataset, batch_size=8, shuffle=True)
    loader = RobustDataLoader(dataset, batch_sampler=sampler, num_workers=2, timeout=POLL, return_list=True,
                              persistent_workers=True)
    with deadline(60):
        for epoch in range(3):
            sampler.set_epoch(epoch)
            assert [i for batch in loader for i in samples(batch)] == epoch_order(64, 8, epoch)
    assert loader.num_workers == (2 if once else 0)


def test_a_healthy_loader_is_untouched(tmp_path, caplog):
    dataset = DyingDataset(tmp_path / "unused", die_at=-1)
    loader = RobustDataLoader(dataset, batch_size=16, num_workers=2, timeout=POLL, return_list=True)
    with caplog.at_level(logging.WARNING, logger="hapi_runner"), deadline(60):
        assert [i for batch in loader for i in samples(batch)] == list(range(64))
    assert (loader.num_workers, loader.use_shared_memory) == (2, True) and hapi_warnings(caplog) == []


class RaisingDataset(DyingDataset):
    def __getitem__(self, i):
        if i == self.die_at:
            raise ValueError(f"sample {i} is broken")
        return np.full([1], i, np.float32)


# Paddle's reader thread re-raises the worker's exception and dies of it, twice, before the fallback.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dataset_bug_surfaces_as_itself_in_the_main_process(tmp_path, caplog):
    loader = RobustDataLoader(RaisingDataset(tmp_path / "unused"), batch_size=8, num_workers=2, timeout=POLL,
                              return_list=True)
    with caplog.at_level(logging.WARNING, logger="hapi_runner"), deadline(60):
        with pytest.raises(ValueError, match="sample 20 is broken"):
            for _ in loader:
                pass
    assert loader.num_workers == 0


@pytest.mark.parametrize("where", ["dataset", "collate"])
def test_an_error_in_the_main_process_loader_is_raised_not_hung(tmp_path, where):
    """Paddle's own single-process loader waits forever when its reading thread raises."""
    def broken_collate(batch):
        raise MemoryError("no room for this batch")

    dataset = RaisingDataset(tmp_path / "unused") if where == "dataset" else DyingDataset(tmp_path / "unused", die_at=-1)
    loader = RobustDataLoader(dataset, batch_size=8, num_workers=0, return_list=True,
                              collate_fn=broken_collate if where == "collate" else None)
    seen = []
    with deadline(30), pytest.raises(ValueError if where == "dataset" else MemoryError):
        for batch in loader:
            seen.extend(samples(batch))
    assert seen == list(range(16))[:len(seen)] and len(seen) <= 16  # the batches before the bad one, in order


@pytest.mark.parametrize("exc, expected", [
    (SystemError("(Fatal) Blocking queue is killed because the data reader raises an exception."), True),
    (RuntimeError("DataLoader worker (pid 12) is killed by signal: Bus error."), True),
    (RuntimeError("DataLoader process (pid 7) exited unexpectedly with code 1"), True),
    (RuntimeError("CUDA out of memory"), False),
    (ValueError("DataLoader worker said no"), False),
])
def test_worker_failures_are_told_from_other_errors(exc, expected):
    assert is_worker_failure(exc) is expected


# End to end (--num-workers 2, a worker dies mid-epoch, the run finishes with one warning line):
# tests/cli/test_errors.py, row dataloader-worker-dies.
