"""DynamicBatcher: batches form under concurrency, bounded queue, failure isolation, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sceneparser.serve.batching import DynamicBatcher, QueueFullError, UnavailableError


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_batched_and_answered_in_order():
    seen: list[list[int]] = []

    def fn(items):
        seen.append(list(items))
        return [x * 10 for x in items]

    async def main():
        b = DynamicBatcher(fn, max_batch_size=4, max_wait_ms=50, max_queue_size=64)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(10))), b.stats.snapshot()
        finally:
            await b.stop()

    results, stats = _run(main())
    assert results == [i * 10 for i in range(10)]
    assert sorted(x for batch in seen for x in batch) == list(range(10))
    assert max(len(batch) for batch in seen) == 4
    assert len(seen) == 3  # 4 + 4 + 2
    assert stats["items"] == 10 and stats["batches"] == 3


def test_max_batch_size_one_is_serial():
    seen: list[int] = []

    def fn(items):
        seen.append(len(items))
        return list(items)

    async def main():
        b = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=20)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(5)))
        finally:
            await b.stop()

    assert _run(main()) == list(range(5))
    assert seen == [1] * 5


def test_full_queue_raises_queue_full_instead_of_growing():
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        return list(items)

    async def main():
        b = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=0, max_queue_size=2)
        await b.start()
        try:
            first = asyncio.ensure_future(b.submit("running"))
            while b.stats.batches < 1:  # the first item is now inside fn
                await asyncio.sleep(0.005)
            queued = [asyncio.ensure_future(b.submit(f"q{i}")) for i in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError):
                await b.submit("overflow")
            gate.set()
            return await asyncio.gather(first, *queued), b.stats.rejected_full
        finally:
            gate.set()
            await b.stop()

    results, rejected = _run(main())
    assert results == ["running", "q0", "q1"]
    assert rejected == 1


def test_a_failing_item_fails_alone():
    def fn(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [s.upper() for s in items]

    async def main():
        b = DynamicBatcher(fn, max_batch_size=8, max_wait_ms=30)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(s) for s in ["a", "bad", "c"]), return_exceptions=True)
        finally:
            await b.stop()

    a, bad, c = _run(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError) and "bad item" in str(bad)


def test_wrong_result_count_is_an_error_not_a_hang():
    async def main():
        b = DynamicBatcher(lambda items: [], max_batch_size=2, max_wait_ms=0)
        await b.start()
        try:
            return await asyncio.gather(b.submit(1), return_exceptions=True)
        finally:
            await b.stop()

    (res,) = _run(main())
    assert isinstance(res, Exception)


def test_not_started_timeout_and_stop_give_unavailable():
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        return list(items)

    async def main():
        b = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=0, max_queue_size=4)
        with pytest.raises(UnavailableError):
            await b.submit(1)
        await b.start()
        with pytest.raises(UnavailableError, match="waited more than"):
            await b.submit(2, timeout=0.05)
        waiting = asyncio.ensure_future(b.submit(3))
        await asyncio.sleep(0.01)
        gate.set()
        await b.stop()
        with pytest.raises(UnavailableError):
            await b.submit(4)
        return await asyncio.gather(waiting, return_exceptions=True)

    (res,) = _run(main())
    # item 3 either ran after the gate opened or was failed by stop(): never left hanging
    assert res == 3 or isinstance(res, UnavailableError)


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_wait_ms": -1}, {"max_queue_size": 0}])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        DynamicBatcher(lambda x: x, **kwargs)


def test_requests_still_arriving_hold_the_batch_past_max_wait():
    seen: list[int] = []

    def fn(items):
        seen.append(len(items))
        return list(items)

    async def main(arrival_ms):
        b = DynamicBatcher(fn, max_batch_size=8, max_wait_ms=1, max_arrival_wait_ms=arrival_ms)
        await b.start()
        try:
            async def late(i):
                with b.arriving():  # e.g. still decoding its image
                    await asyncio.sleep(0.05)
                return await b.submit(i)

            first = asyncio.ensure_future(b.submit(0))
            await asyncio.sleep(0)
            return await asyncio.gather(first, *(late(i) for i in range(1, 4)))
        finally:
            await b.stop()

    assert _run(main(arrival_ms=1000)) == [0, 1, 2, 3]
    assert seen == [4]  # one batch: the worker waited for the three arriving requests
    seen.clear()
    assert _run(main(arrival_ms=0)) == [0, 1, 2, 3]
    assert seen[0] == 1  # without the arrival wait the first request goes alone
