"""DynamicBatcher on its own: batches concurrent requests, answers each with its own rows, waits only when others come."""

import asyncio
import time

import numpy as np
import pytest

from hapi_runner.deploy.batching import DynamicBatcher, QueueFull


def row_sums(batch):
    """A stand-in predictor: one logit row per image, [sum, images in the batch], so each answer says whose it is."""
    sums = batch.reshape(len(batch), -1).sum(axis=1)
    return np.stack([sums, np.full(len(batch), len(batch), dtype=np.float32)], axis=1)


def batcher(**settings):
    created = DynamicBatcher(settings.pop("workers", 1), **settings)
    created.load(lambda index: row_sums)
    return created


async def _ask(b, value, images=1):
    b.admit()
    logits, size = await b.submit(np.full((images, 1, 2, 2), value, dtype=np.float32))
    return value, images, logits, size


@pytest.mark.parametrize("workers,max_batch", [(1, 4), (2, 8), (1, 32)])
def test_concurrent_requests_share_batches_and_get_their_own_rows(workers, max_batch):
    async def main():
        b = batcher(workers=workers, max_batch=max_batch, max_delay_ms=50)
        b.start()
        answers = await asyncio.gather(*(_ask(b, float(v), images=1 + v % 3) for v in range(20)))
        await b.stop()
        return b, answers

    b, answers = asyncio.run(main())
    for value, images, logits, size in answers:
        assert logits.shape == (images, 2) and np.all(logits[:, 0] == value * 4)  # 2x2 pixels of the value
        assert np.all(logits[:, 1] == size) and images <= size <= max_batch
    assert b.images == sum(a[1] for a in answers) and b.batches < len(answers)


def test_a_lone_request_does_not_wait_the_delay():
    async def main():
        b = batcher(max_delay_ms=2000)
        b.start()
        started = time.perf_counter()
        _, _, _, size = await _ask(b, 1.0)
        elapsed = time.perf_counter() - started
        await b.stop()
        return size, elapsed

    size, elapsed = asyncio.run(main())
    assert size == 1 and elapsed < 0.5


def test_an_admitted_request_is_waited_for_until_the_delay():
    async def main():
        b = batcher(max_delay_ms=300)
        b.start()
        b.admit()  # a request still reading its body
        first = asyncio.ensure_future(_ask(b, 1.0))
        await asyncio.sleep(0.05)
        late = b.submit(np.full((1, 1, 2, 2), 2.0, dtype=np.float32))
        (_, _, _, size), (_, late_size) = await asyncio.gather(first, late)
        await b.stop()
        return size, late_size

    assert asyncio.run(main()) == (2, 2)


def test_the_queue_is_bounded_and_a_withdrawn_request_frees_its_place():
    b = batcher(max_queue=2)
    b.admit()
    b.admit()
    with pytest.raises(QueueFull, match="queue holds 2"):
        b.admit()
    b.withdraw()
    b.admit()


def test_a_failing_predictor_fails_every_request_of_its_batch_and_the_next_batch_runs():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("predictor failed")
        return row_sums(batch)

    async def main():
        b = DynamicBatcher(1, max_delay_ms=50)
        b.load(lambda index: flaky)
        b.start()
        first = await asyncio.gather(_ask(b, 1.0), _ask(b, 2.0), return_exceptions=True)
        second = await _ask(b, 3.0)
        await b.stop()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first) and second[2][0, 0] == 12.0
