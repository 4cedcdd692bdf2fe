"""Dynamic batching: concurrent requests are queued and answered in batches.

A :class:`DynamicBatcher` owns a bounded ``asyncio.Queue`` and one worker task. Each request
calls :meth:`DynamicBatcher.submit`; the worker takes the first waiting item, gathers more for
up to ``max_wait_ms`` (or until ``max_batch_size`` items are in hand) and hands the whole batch
to a *blocking* callable on a single background thread, so the event loop keeps accepting
requests while the model runs. Requests that arrive while a batch is running pile up in the
queue and form the next batch, so under load batches fill without waiting at all. Requests that
are still being read or decoded (:meth:`DynamicBatcher.arriving`) may hold a batch up to
``max_arrival_wait_ms`` longer, so a burst of concurrent requests lands in one batch.

Back-pressure instead of unbounded memory: when the queue is full :meth:`submit` raises
:class:`QueueFullError` at once (HTTP 429); when the batcher is not running, or an item waited
longer than its timeout, it raises :class:`UnavailableError` (HTTP 503).

If a batch call raises, the batch is retried one item at a time, so one bad input fails only its
own request.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]


class BatcherError(Exception):
    """Base class of the errors :meth:`DynamicBatcher.submit` raises."""


class QueueFullError(BatcherError):
    """The queue is full: the client should retry later (HTTP 429)."""


class UnavailableError(BatcherError):
    """The batcher is not running or the request timed out in the queue (HTTP 503)."""


@dataclass
class BatcherStats:
    """Counters for /health and the benchmark (read-only snapshots via :meth:`snapshot`)."""

    batches: int = 0
    items: int = 0
    rejected_full: int = 0
    failed_items: int = 0
    max_batch_seen: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "items": self.items,
            "rejected_full": self.rejected_full,
            "failed_items": self.failed_items,
            "max_batch_seen": self.max_batch_seen,
            "mean_batch_size": round(self.items / self.batches, 3) if self.batches else 0.0,
        }


@dataclass
class _Pending(Generic[Item]):
    item: Item
    future: asyncio.Future
    enqueued: float


class DynamicBatcher(Generic[Item, Result]):
    """Queue + worker that calls ``batch_fn(list_of_items) -> list_of_results`` in batches.

    ``batch_fn`` is blocking (a model call) and must return one result per item, in order.
    ``max_batch_size=1`` gives serial handling (one request at a time), the baseline the
    benchmark compares against.
    """

    def __init__(
        self,
        batch_fn: BatchFn,
        *,
        max_batch_size: int = 8,
        max_wait_ms: float = 10.0,
        max_queue_size: int = 64,
        max_arrival_wait_ms: float = 100.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if max_queue_size < 1:
            raise ValueError("max_queue_size must be >= 1")
        self.batch_fn = batch_fn
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.max_queue_size = int(max_queue_size)
        self.max_arrival_wait_s = max(0.0, float(max_arrival_wait_ms)) / 1000.0
        self._arriving = 0
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._running and self._worker is not None and not self._worker.done()

    @property
    def full(self) -> bool:
        return self._queue is not None and self._queue.full()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.max_queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sceneparser-batch")
        self._running = True
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="sceneparser-batcher")

    async def stop(self) -> None:
        """Stop accepting work, fail what is still queued with UnavailableError, join the worker."""
        self._running = False
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(UnavailableError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------------ requests
    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request that is being read/decoded and will be submitted next.

        While any request is arriving, a batch being collected waits for it past ``max_wait_ms``
        (at most ``max_arrival_wait_ms`` more). Leave the block right before :meth:`submit`.
        """
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, item: Item, timeout: float | None = None) -> Result:
        """Queue ``item`` and wait for its result.

        Raises QueueFullError when the queue is full, UnavailableError when the batcher is
        stopped or ``timeout`` seconds pass first; re-raises the exception ``batch_fn`` raised
        for this item.
        """
        if not self.running or self._queue is None:
            raise UnavailableError("the model worker is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, future, time.perf_counter()))
        except asyncio.QueueFull:
            self.stats.rejected_full += 1
            raise QueueFullError(
                f"the request queue is full ({self.max_queue_size} waiting); retry shortly"
            ) from None
        try:
            if timeout is None:
                return await future
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()  # the worker skips cancelled items
            raise UnavailableError(
                f"the request waited more than {timeout:g} s for the model; the server is overloaded"
            ) from None
        except asyncio.CancelledError:
            future.cancel()  # client went away: don't spend model time on it
            raise

    # ------------------------------------------------------------------ worker
    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        start = time.perf_counter()
        deadline = start + self.max_wait_s
        # requests already inside the server (being read or decoded) may hold the batch a little
        # longer: they are about to be queued, and a full batch costs little more than a small one
        hard_deadline = deadline + self.max_arrival_wait_s
        while len(batch) < self.max_batch_size:
            try:  # whatever is already waiting joins without delay
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            now = time.perf_counter()
            remaining = deadline - now
            if remaining <= 0:
                if self._arriving <= 0 or now >= hard_deadline:
                    break
                remaining = min(0.002, hard_deadline - now)  # poll: arrivals may also be refused
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                continue
        return [p for p in batch if not p.future.done()]

    def _call(self, items: list[Any]) -> list[Any]:
        """Run batch_fn; if the batch fails, retry item by item so a bad item fails alone.

        Returns one entry per item: a result, or an ``_Failure`` wrapping the exception.
        """
        try:
            results = list(self.batch_fn(items))
            if len(results) != len(items):
                raise RuntimeError(
                    f"batch function returned {len(results)} results for {len(items)} items"
                )
            return results
        except Exception as exc:  # noqa: BLE001 - isolate per item below
            if len(items) == 1:
                return [_Failure(exc)]
        out: list[Any] = []
        for item in items:
            try:
                res = list(self.batch_fn([item]))
                out.append(res[0] if len(res) == 1 else _Failure(RuntimeError("bad batch result")))
            except Exception as exc:  # noqa: BLE001
                out.append(_Failure(exc))
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running:
            batch = await self._collect()
            if not batch:
                continue
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(batch))
            self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
            try:
                results = await loop.run_in_executor(self._executor, self._call, [p.item for p in batch])
            except asyncio.CancelledError:  # stop() while a batch runs: fail it, don't hang
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(UnavailableError("the server is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - executor gone (shutdown)
                results = [_Failure(exc)] * len(batch)
            for pending, result in zip(batch, results):
                if pending.future.done():
                    continue
                if isinstance(result, _Failure):
                    self.stats.failed_items += 1
                    pending.future.set_exception(result.exc)
                else:
                    pending.future.set_result(result)


@dataclass
class _Failure:
    exc: BaseException
