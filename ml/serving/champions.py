"""The champions this process serves, and how it follows the registry (hot swap).

One slot per served model. Every `poll_s` seconds (at most 30: ml.config.MAX_POLL_S) a thread
reads each model's champion alias from the registry; when it names another version than the
slot holds, that version is loaded beside the running one (ml.serving.models) and swapped in
by one assignment. A batch already running keeps the model it started with, so requests in
flight finish on the old version and nothing is dropped; the next batch runs the new one.

When the registry cannot be read, or a champion cannot be loaded (its artifact fails its
sha256 check, is missing...), the slot keeps serving what it holds and the service reports
itself degraded (`/ready`) until a later poll succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ml.config import ServeSettings, Settings
from ml.serving import metrics
from ml.serving.batching import MicroBatcher
from ml.serving.models import ServedModel, load_errors, load_served

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """A served model: what it holds now, and why it does not hold its champion if so."""

    name: str
    batcher: MicroBatcher[dict[str, Any]]
    served: ServedModel | None = None
    # Why the registry's champion is not what this slot serves (None: it is).
    problem: str | None = None
    # The champion version last found in the registry, and (version, sha256) refused for good.
    champion: int | None = None
    failed: set[tuple[int, str]] = field(default_factory=set)

    def run(self, texts: list[str], top_k: int) -> tuple[ServedModel, list[dict[str, Any]]]:
        """One batch, on the model held when the batch starts (ml.serving.batching)."""
        served = self.served
        if served is None:
            raise Unavailable(self.name, self.problem)
        return served, served.predict(texts, top_k)


class Unavailable(Exception):
    """A model with nothing loaded (its champion could not be read or loaded)."""

    def __init__(self, name: str, problem: str | None) -> None:
        super().__init__(f"model {name!r} is not available: {problem or 'not loaded yet'}")


class Champions:
    """The slots of the served models, the registry poll, and the service's readiness."""

    def __init__(
        self, names: list[str], cfg: Settings, serve: ServeSettings, executor: Executor
    ) -> None:
        self.cfg, self.serve = cfg, serve
        self.threads = serve.threads or 1
        self.slots = {name: Slot(name, self._batcher(name, executor)) for name in names}
        self.registry_problem: str | None = "not polled yet"
        self._task: asyncio.Task[None] | None = None

    def _batcher(self, name: str, executor: Executor) -> MicroBatcher[dict[str, Any]]:
        def on_batch(texts: int, seconds: float) -> None:
            metrics.BATCH_TEXTS.labels(name).observe(texts)
            metrics.BATCH_SECONDS.labels(name).observe(seconds)

        return MicroBatcher(
            lambda texts, top_k: self.slots[name].run(texts, top_k),
            executor,
            max_batch=self.serve.max_batch,
            wait_s=self.serve.batch_wait_ms / 1000,
            max_queue=self.serve.max_queue,
            on_batch=on_batch,
            on_queue=lambda n: metrics.QUEUED.labels(name).set(n),
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        for slot in self.slots.values():
            slot.batcher.start()
            metrics.MODEL_VERSION.labels(slot.name, "none").set(0)
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for slot in self.slots.values():
            await slot.batcher.stop()

    async def _poll_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.poll)
            except Exception:  # a bug in one poll must not end hot swapping for good
                log.exception("polling the registry failed")
            await asyncio.sleep(self.serve.poll_s)

    # --- the poll (a worker thread) ---------------------------------------------------------

    def poll(self) -> None:
        """Read every champion alias once; load and swap in those that moved."""
        from ml.registry.errors import NotFoundError, RegistryError
        from ml.registry.store import CHAMPION, Registry

        champions: dict[str, Any] = {}
        try:
            # A fresh connection each poll (attempts=1: the next poll is the retry), so an
            # unreachable database is noticed at once rather than through a pooled connection.
            with Registry(self.cfg.registry_url, attempts=1) as registry:
                for name in self.slots:
                    try:
                        champions[name] = registry.get(name, alias=CHAMPION)
                    except NotFoundError as exc:
                        champions[name] = exc
        except RegistryError as exc:
            if self.registry_problem is None:
                log.error("registry unreachable, serving the versions loaded: %s", exc)
            # /ready says it in words without the database's address; the log has it.
            self.registry_problem = "registry unreachable"
            metrics.REGISTRY_UP.set(0)
            return
        self.registry_problem = None
        metrics.REGISTRY_UP.set(1)
        for name, found in champions.items():
            slot = self.slots[name]
            if isinstance(found, Exception):
                slot.champion, slot.problem = None, "no champion in the registry"
                continue
            slot.champion = found.version
            self._follow(slot, found)

    def _follow(self, slot: Slot, version: Any) -> None:
        held = slot.served
        key = (version.version, version.artifact_sha256)
        if held is not None and (held.version, held.sha256) == key:
            slot.problem = None
            return
        if key in slot.failed:
            return  # refused for good; a new champion (or a restart) tries again
        try:
            served = load_served(version, self.cfg, self.serve.runtime, self.threads)
        except load_errors() as exc:
            if _for_good(exc):
                slot.failed.add(key)
            slot.problem = (
                f"champion {slot.name}:{version.version} could not be loaded: {_why(exc)}"
            )
            metrics.LOAD_FAILURES.labels(slot.name).inc()
            log.error("%s (%s)", slot.problem, exc)
            return
        slot.served, slot.problem = served, None  # the swap
        if held is not None:
            metrics.MODEL_VERSION.labels(slot.name, held.runtime).set(0)
        metrics.MODEL_VERSION.labels(slot.name, "none").set(0)
        metrics.MODEL_VERSION.labels(slot.name, served.runtime).set(served.version)
        metrics.SWAPS.labels(slot.name).inc()
        was = f"{held.version}" if held else "none"
        log.info("serving %s:%d (%s; was %s)", slot.name, served.version, served.runtime, was)

    # --- state for /ready and /v1/models ------------------------------------------------------

    def readiness(self) -> tuple[str, list[str]]:
        """`ready` (every champion loaded, registry read), `degraded` (serving, with the
        reasons), or `unavailable` (nothing loaded)."""
        problems = [p for p in [self.registry_problem] if p]
        problems += [
            f"{s.name}: {s.problem or 'loading'}"
            for s in self.slots.values()
            if s.problem or s.served is None
        ]
        if not any(s.served for s in self.slots.values()):
            return "unavailable", problems or ["no model loaded yet"]
        return ("degraded" if problems else "ready"), problems

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "champion": s.champion,
                **({"loaded": s.served.describe()} if s.served else {"loaded": None}),
                **({"problem": s.problem} if s.problem else {}),
            }
            for s in self.slots.values()
        ]


def _for_good(exc: Exception) -> bool:
    """A refusal that polling again cannot change (the bytes or the task type are wrong), as
    opposed to a store or network error worth retrying at the next poll."""
    from ml.artifact.integrity import ArtifactIntegrityError
    from ml.tasks.contract import UnknownTaskError

    return isinstance(exc, ArtifactIntegrityError | UnknownTaskError)


def _why(exc: Exception) -> str:
    """A short reason for callers and /ready (the log has the whole message)."""
    from ml.artifact.integrity import ArtifactIntegrityError

    if isinstance(exc, ArtifactIntegrityError):
        return "its artifact failed its integrity (sha256) check"
    if isinstance(exc, FileNotFoundError):
        return "its artifact is missing"
    return type(exc).__name__
