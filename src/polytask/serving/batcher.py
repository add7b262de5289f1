"""Micro-batching: concurrent requests share one encoder pass.

Requests wait in a bounded asyncio queue. One worker takes the first waiting request, then
keeps collecting for at most ``max_wait_ms`` or until ``max_batch`` inputs, and runs the whole
group in a single-thread executor (the event loop stays free to accept and reject requests).
A full queue is refused at once (``Overloaded`` -> HTTP 503) instead of letting latency grow
without bound.

One request never fails another: when a group fails as a whole, each of its requests is run
again on its own, so the good ones are answered and only the one that fails alone gets an
error (``RequestFailed``: 422 for an input the model cannot read, 500 for a server fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from polytask.data.records import Record
from polytask.errors import PolytaskError

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The request queue is full; the client should retry later."""


class RequestFailed(Exception):
    """One request's own failure, with the HTTP status it is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


#: What a client is told when its request alone fails for no fault of its input.
SERVER_FAULT = "prediction failed for this request (a server fault, logged with its traceback)"


@dataclass
class Job:
    records: list[Record]
    tasks: list[str]
    future: asyncio.Future = field(repr=False)


#: Runs a group of jobs; returns each job's result (or its own RequestFailed) in order.
#: Called in the worker thread.
RunJobs = Callable[[list[Job]], list[Any]]


class MicroBatcher:
    def __init__(self, run: RunJobs, max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue = max_queue
        self._queue: asyncio.Queue[Job] | None = None
        self._held: Job | None = None  # taken from the queue but did not fit the last batch
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        # The queue belongs to the running loop, and an app may be started again after a
        # shutdown (tests, reloads), so queue and executor are made here, not in __init__.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polytask-model")
        self._queue = asyncio.Queue(self.max_queue)
        self._worker = asyncio.create_task(self._loop(), name="polytask-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, records: list[Record], tasks: list[str]) -> Any:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited (is the app's lifespan running?)")
        job = Job(records, tasks, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"{self.max_queue} requests are already waiting") from None
        return await job.future

    async def _collect(self) -> list[Job]:
        assert self._queue is not None
        first, self._held = self._held or await self._queue.get(), None
        jobs, size = [first], len(first.records)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 and self._queue.empty():
                break
            try:
                job = self._queue.get_nowait() if not self._queue.empty() else \
                    await asyncio.wait_for(self._queue.get(), remaining)
            except asyncio.TimeoutError:
                break
            if size + len(job.records) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            size += len(job.records)
        return jobs

    async def _loop(self) -> None:
        while True:
            jobs = [job for job in await self._collect() if not job.future.done()]
            if not jobs:
                continue  # every client of this group went away
            for job, result in zip(jobs, await self._answers(jobs)):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    async def _answers(self, jobs: list[Job]) -> list[Any]:
        """Each job's result; a group that fails is run again one job at a time."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.run, jobs)
        except Exception as exc:  # noqa: BLE001 - the error goes to the waiting client(s)
            if len(jobs) == 1:
                log.exception("prediction failed for one request")
                status, message = (422, str(exc)) if isinstance(exc, PolytaskError) else (500, SERVER_FAULT)
                return [RequestFailed(status, message)]
            log.warning("prediction failed for a batch of %d requests (%s: %s); running each alone",
                        len(jobs), type(exc).__name__, exc)
        # A client that went away meanwhile is skipped (its None answer is never delivered).
        return [None if job.future.done() else (await self._answers([job]))[0] for job in jobs]
