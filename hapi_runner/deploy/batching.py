"""Dynamic batching: concurrent requests' images gathered into batches for a pool of predictors.

A predictor runs a batch of 32 in far less than 32 times a batch of one
(the weights are read once, the matrix kernels fill their registers), so a
server that runs each request alone wastes most of its CPU under load.
Triton and TorchServe gather requests that arrive together; this does the
same, on the server's asyncio loop:

- one collector takes requests from a bounded queue as soon as a predictor
  is free, up to ``max_batch`` images, and waits for more at most
  ``max_delay`` after the oldest request arrived;
- it stops waiting at once when no other accepted request is on its way
  (a request whose body is still being read or decoded counts), so a lone
  client pays no delay at all;
- each predictor lives in a thread of its own (a ``paddle.inference``
  predictor is not thread-safe), so the loop keeps reading, decoding and
  answering while batches run;
- a full queue refuses at the door (:class:`QueueFull`, the server's 503)
  instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional, Tuple

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


class QueueFull(Exception):
    """More requests are waiting than the queue holds; the caller should try again shortly."""


@dataclass
class _Job:
    inputs: np.ndarray
    future: asyncio.Future
    enqueued: float


class DynamicBatcher:
    """Gathers submitted image batches into predictor batches and hands each caller its own rows.

    Args:
        workers: predictors, each in a thread of its own. Defaults to 1.
        max_batch: most images per predictor run. Defaults to 32.
        max_delay_ms: longest a request waits for others to share its batch. Defaults to 5.
        max_queue: most requests accepted and not yet in a batch; more get :class:`QueueFull`. Defaults to 256.
    """

    def __init__(self, workers: int = 1, *, max_batch: int = 32, max_delay_ms: float = 5.0, max_queue: int = 256):
        self.predictors: List[Predict] = []
        self.workers = int(workers)
        self.max_batch = int(max_batch)
        self.max_delay = float(max_delay_ms) / 1000.0
        self.max_queue = int(max_queue)
        self._executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predictor-{i}") for i in range(self.workers)]
        self._queue: Deque[_Job] = collections.deque()
        self._pending = 0  # admitted requests not yet taken into a batch (reading, decoding or queued)
        self._wake: Optional[asyncio.Event] = None
        self._idle: Optional[asyncio.Queue] = None
        self._collector: Optional[asyncio.Task] = None
        self._running: set = set()
        self._stopping = False
        self.batches = 0
        self.images = 0

    def load(self, factory: Callable[[int], Predict]) -> List[Predict]:
        """Builds each worker's predictor in that worker's thread, ``factory(index)``, and returns them.

        Each callable takes ``[N, C, H, W]`` float32 and returns ``[N, classes]`` logits.
        """
        self.predictors = [self._executors[i].submit(factory, i).result() for i in range(self.workers)]
        return self.predictors

    async def warm_up(self, batch: np.ndarray) -> float:
        """Runs ``batch`` once on every predictor (first runs compile kernels); returns the slowest run's seconds."""
        loop = asyncio.get_running_loop()

        async def one(index: int) -> float:
            started = time.perf_counter()
            await loop.run_in_executor(self._executors[index], self.predictors[index], batch)
            return time.perf_counter() - started

        return max(await asyncio.gather(*(one(i) for i in range(self.workers))))

    def start(self) -> None:
        """Starts the collector on the running loop; submissions before this wait in the queue."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Queue()
        for index in range(self.workers):
            self._idle.put_nowait(index)
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    def admit(self) -> None:
        """Counts a request in before its body is read, or raises :class:`QueueFull`; follow with :meth:`submit` or :meth:`withdraw`."""
        if self._pending >= self.max_queue:
            raise QueueFull(f"{self._pending} requests are waiting (the queue holds {self.max_queue})")
        self._pending += 1

    def withdraw(self) -> None:
        """An admitted request that will not submit (its input was bad): the collector stops waiting for it."""
        self._pending -= 1
        self._signal()

    async def submit(self, inputs: np.ndarray) -> Tuple[np.ndarray, int]:
        """Logits for an admitted request's ``[n, C, H, W]`` batch, and the size of the batch it ran in."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(np.asarray(inputs, dtype=np.float32), future, time.monotonic()))
        self._signal()
        return await future

    def _signal(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _collect(self) -> None:
        while True:
            worker = await self._idle.get()
            first = await self._next_job()
            if first is None:
                return
            jobs = await self._gather(first)
            task = asyncio.get_running_loop().create_task(self._run(worker, jobs))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_job(self) -> Optional[_Job]:
        while not self._queue:
            if self._stopping:
                return None
            self._wake.clear()
            await self._wake.wait()
        self._pending -= 1
        return self._queue.popleft()

    async def _gather(self, first: _Job) -> List[_Job]:
        """``first`` and the jobs that join it: until the batch is full, the delay is over, or nobody else is coming."""
        jobs, count = [first], len(first.inputs)
        deadline = first.enqueued + self.max_delay
        while count < self.max_batch:
            if self._queue:
                if count + len(self._queue[0].inputs) > self.max_batch:
                    break  # the next request's images would overfill the batch: it leads the next one
                job = self._queue.popleft()
                self._pending -= 1
                jobs.append(job)
                count += len(job.inputs)
                continue
            left = deadline - time.monotonic()
            if self._pending <= 0 or left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                pass
        return jobs

    async def _run(self, worker: int, jobs: List[_Job]) -> None:
        batch = np.concatenate([job.inputs for job in jobs]) if len(jobs) > 1 else jobs[0].inputs
        loop = asyncio.get_running_loop()
        try:
            logits = await loop.run_in_executor(self._executors[worker], self.predictors[worker], batch)
        except Exception as exc:  # the predictor's failure is every request's in the batch
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self._idle.put_nowait(worker)
        self.batches += 1
        self.images += len(batch)
        start = 0
        for job in jobs:
            rows = logits[start:start + len(job.inputs)]
            start += len(job.inputs)
            if not job.future.done():  # a client that went away leaves a cancelled future
                job.future.set_result((rows, len(batch)))

    async def stop(self) -> None:
        """Lets queued requests finish, then stops the collector and the worker threads."""
        self._stopping = True
        self._signal()
        if self._collector is not None:
            await self._collector
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        for executor in self._executors:
            executor.shutdown(wait=True)
