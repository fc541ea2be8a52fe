"""Micro-batching: the texts of concurrent requests run through a model together.

Requests that arrive together are scored together: one hand-off to the inference thread, one
tokenizer call, and on a GPU one matrix product for many texts, instead of one each. A batch
closes when it holds `max_batch` texts or `wait_s` after its first text arrived, and runs on
the inference thread while the event loop keeps accepting requests. Under load, texts queue
while a batch runs and the next batch takes them all; alone, a request waits at most `wait_s`.

A request's texts stay in one batch (one model version answers them all); a request larger
than `max_batch` is a batch of its own (the task batches inside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

R = TypeVar("R")
# Runs one batch on the inference thread: (texts, top_k) -> (who answered, one result a text).
RunBatch = Callable[[list[str], int], tuple[Any, list[R]]]


class Overloaded(Exception):
    """More texts are waiting for this model than the queue may hold: try again shortly."""


@dataclass
class _Pending(Generic[R]):
    texts: list[str]
    top_k: int
    done: asyncio.Future[tuple[Any, list[R]]]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[R]):
    """Collects texts from concurrent `submit` calls into batches for `run`.

    `on_batch(texts, seconds)` is told each batch's size and run time (metrics); `on_queue`
    the number of texts waiting whenever it changes.
    """

    def __init__(
        self,
        run: RunBatch[R],
        executor: Executor,
        *,
        max_batch: int,
        wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self._run, self._executor = run, executor
        self.max_batch, self.wait_s, self.max_queue = max_batch, wait_s, max_queue
        self._on_batch = on_batch or (lambda n, s: None)
        self._on_queue = on_queue or (lambda n: None)
        self._queue: asyncio.Queue[_Pending[R]] = asyncio.Queue()
        self._held: _Pending[R] | None = None  # too big for the last batch: first of the next
        self.queued = 0  # texts submitted and not yet answered
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, texts: list[str], top_k: int) -> tuple[Any, list[R]]:
        """One result per text, and who answered (the model version of their batch)."""
        if self.queued and self.queued + len(texts) > self.max_queue:
            raise Overloaded(f"{self.queued} texts are waiting")
        pending = _Pending(list(texts), top_k, asyncio.get_running_loop().create_future())
        self._count(len(texts))
        self._queue.put_nowait(pending)
        try:
            return await pending.done
        finally:
            self._count(-len(texts))

    def _count(self, delta: int) -> None:
        self.queued += delta
        self._on_queue(self.queued)

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            texts = [t for p in batch for t in p.texts]
            top_k = max(p.top_k for p in batch)
            loop = asyncio.get_running_loop()
            tick = time.perf_counter()
            try:
                who, results = await loop.run_in_executor(self._executor, self._run, texts, top_k)
            except Exception as exc:  # every request of the batch gets the error
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self._on_batch(len(texts), time.perf_counter() - tick)
            start = 0
            for p in batch:
                if not p.done.done():  # a caller that went away is skipped
                    p.done.set_result((who, results[start : start + len(p.texts)]))
                start += len(p.texts)

    async def _collect(self) -> list[_Pending[R]]:
        """The next batch: the first waiting request, then more until `max_batch` texts or
        `wait_s` after the first arrived."""
        first, self._held = self._held or await self._queue.get(), None
        batch, size = [first], len(first.texts)
        deadline = first.queued_at + self.wait_s
        while size < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if size + len(nxt.texts) > self.max_batch:
                self._held = nxt
                break
            batch.append(nxt)
            size += len(nxt.texts)
        return batch
