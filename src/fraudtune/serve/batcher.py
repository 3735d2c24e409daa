"""Micro-batching: concurrent requests share one model call.

Requests put their transactions on a bounded queue; one worker takes the first waiting request, gathers whatever
else arrives within `max_wait_ms` up to `max_batch` transactions, runs the model once on all of them in a thread,
and hands each request its own records back. Throughput then grows with concurrency (a batch of 16 costs far less
than 16 batches of 1), while a lone request waits at most `max_wait_ms` for company.

The queue is bounded in transactions, not requests: a request that would take it past `max_queue` is refused at
once (the service answers 503 with Retry-After) instead of letting memory and latency grow without limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue holds too many transactions to take this request now."""


@dataclass
class _Job:
    transactions: list[dict[str, Any]]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What /metrics reports about the batcher (plain numbers; the service turns them into Prometheus series)."""

    batches: int = 0
    transactions: int = 0
    batch_sizes: list[int] = field(default_factory=list)  # sizes since the last read (drained by the service)


class MicroBatcher:
    """One worker per model call kind (score, explain), each owning a bounded queue."""

    def __init__(
        self,
        run: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue, self.on_batch = max_queue, on_batch
        self.pending = 0  # transactions queued or in the running batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraudtune-model")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of these transactions, in order; QueueFull when the queue cannot take them now."""
        if not transactions:
            return []
        if self.pending + len(transactions) > self.max_queue:
            raise QueueFull(f"{self.pending} transactions queued, limit {self.max_queue}")
        self.pending += len(transactions)
        job = _Job(transactions, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        try:
            return await job.future
        finally:
            self.pending -= len(transactions)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].transactions)
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.transactions)
            live = [j for j in jobs if not j.future.done()]  # a request that timed out meanwhile is not scored
            batch = [t for j in live for t in j.transactions]
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                records = await loop.run_in_executor(self._executor, self.run, batch)
            except Exception as exc:  # the model failed: every request of the batch gets the error
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in live:
                part = records[start : start + len(job.transactions)]
                start += len(job.transactions)
                if not job.future.done():
                    job.future.set_result(part)
