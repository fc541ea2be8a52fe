"""The service's group commit: corrections from concurrent requests written in one Delta commit.

A request's items are queued with a future; one thread takes everything queued, checks each
request (ml.feedback.store.check), writes all the rows that passed in one MERGE commit, then
answers every request. A request is answered only after its commit: an answer of 200/201 means
written. While a commit runs the next requests queue, so under load each commit carries many
requests (a commit costs about the same for 1 row or 1000) and the table does not gain a
version per request.

The queue is bounded (INTENTFLOW_FEEDBACK_MAX_PENDING items, default 10000): past it `submit`
raises Busy at once (the route answers 429 with Retry-After), so a flood costs neither memory
nor a crash. A failed write fails the requests of its group (the route answers 503); the rows
are not kept: the caller retries, and the retry is idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ml.config import Settings
from ml.feedback.lookup import Predicted, PredictionIndex
from ml.feedback.store import Checked, FeedbackResult, check, write
from ml.feedback.table import FeedbackTable

log = logging.getLogger(__name__)

MAX_PENDING_ENV = "INTENTFLOW_FEEDBACK_MAX_PENDING"
DEFAULT_MAX_PENDING = 10_000


def max_pending() -> int:
    from ml.config import _positive

    return _positive(MAX_PENDING_ENV, DEFAULT_MAX_PENDING)


class Busy(Exception):
    """The queue is full: retry after `retry_after` seconds."""

    def __init__(self, queued: int, retry_after: int = 1) -> None:
        super().__init__(f"{queued} corrections are waiting to be written")
        self.retry_after = retry_after


@dataclass
class _Request:
    model: str
    items: list[Mapping[str, Any]]
    labels: frozenset[str]
    atomic: bool
    future: Future[FeedbackResult]


class FeedbackWriter:
    """One writer thread per service process; `commits` counts the commits it made."""

    def __init__(
        self,
        cfg: Settings,
        index: PredictionIndex,
        *,
        new_labels: bool,
        pending: Callable[[set[str]], dict[str, Predicted]] | None = None,
        limit: int = DEFAULT_MAX_PENDING,
        on_commit: Callable[[int, int], None] = lambda requests, rows: None,
    ) -> None:
        self.cfg, self.index, self.new_labels = cfg, index, new_labels
        self.table = FeedbackTable(cfg.feedback)
        self._pending, self.limit, self._on_commit = pending, limit, on_commit
        self._queue: list[_Request] = []
        self._queued = 0  # items queued, not yet taken
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedback-writer", daemon=True)
        self.commits = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Answer what is queued, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def submit(
        self,
        model: str,
        items: list[Mapping[str, Any]],
        labels: Iterable[str] = (),
        atomic: bool = True,
    ) -> Future[FeedbackResult]:
        """Queue one request's items; Busy when the queue is full (nothing queued then)."""
        future: Future[FeedbackResult] = Future()
        with self._lock:
            if self._stop.is_set():
                raise Busy(self._queued, retry_after=5)
            if self._queued + len(items) > self.limit:
                raise Busy(self._queued)
            self._queue.append(_Request(model, list(items), frozenset(labels), atomic, future))
            self._queued += len(items)
        self._wake.set()
        return future

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                group, self._queue = self._queue, []
                self._queued = 0
            if group:
                self._write(group)
            elif self._stop.is_set():
                return

    def _write(self, group: list[_Request]) -> None:
        checked: list[tuple[_Request, Checked]] = []
        for request in group:
            try:
                one = check(
                    self.cfg,
                    request.model,
                    request.items,
                    self.index,
                    labels=request.labels,
                    new_labels=self.new_labels,
                    pending=self._pending,
                )
            except Exception as exc:  # the lookup's storage failed: this request fails alone
                request.future.set_exception(exc)
                continue
            if request.atomic and any(o.status == "rejected" for o in one.outcomes):
                request.future.set_result(FeedbackResult(one.outcomes))
                continue
            checked.append((request, one))
        if not checked:
            return
        try:
            written = write(self.table, [one for _, one in checked])
        except Exception as exc:  # storage down: every request of the group is refused
            log.error("feedback: writing %d requests failed: %s", len(checked), type(exc).__name__)
            for request, _ in checked:
                request.future.set_exception(exc)
            return
        if written:
            self.commits += 1
        self._on_commit(len(checked), written)
        for request, one in checked:
            request.future.set_result(FeedbackResult(one.outcomes, written))
