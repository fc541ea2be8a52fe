"""Micro-batching (ml.serving.batching): concurrent requests run together, each request's texts
in one batch, results back to the right caller, errors to every caller of the batch."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ml.serving.batching import MicroBatcher, Overloaded


class Model:
    """Records its batches; answers each text with (text, the batch's number)."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate, self.fail = gate, fail

    def __call__(self, texts: list[str], top_k: int) -> tuple[str, list[tuple[str, int]]]:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("model broke")
        self.batches.append(texts)
        return f"v{len(self.batches)}", [(t, len(self.batches)) for t in texts]


def run(model: Model, requests: list[list[str]], **kwargs: object) -> list[object]:
    async def main() -> list[object]:
        options = {"max_batch": 8, "wait_s": 0.05, "max_queue": 100, **kwargs}
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, **options)  # type: ignore[arg-type]
            batcher.start()
            try:
                return await asyncio.gather(
                    *(batcher.submit(texts, 1) for texts in requests), return_exceptions=True
                )
            finally:
                await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    model = Model()
    requests = [[f"r{i}-a", f"r{i}-b"] for i in range(6)]
    answers = run(model, requests)
    for texts, (who, results) in zip(requests, answers, strict=True):  # type: ignore[misc]
        assert [t for t, _ in results] == texts
        assert who == f"v{results[0][1]}"  # who answered: the batch that ran them
    # 12 texts at most 8 a batch: 2 batches, never a request split between them.
    assert [len(b) for b in model.batches] == [8, 4]
    for texts in requests:
        assert any(texts == b[i : i + 2] for b in model.batches for i in range(len(b)))


def test_a_request_larger_than_a_batch_runs_alone() -> None:
    model = Model()
    run(model, [["a"] * 20, ["b"]])
    assert sorted(len(b) for b in model.batches) == [1, 20]


def test_a_lone_request_waits_at_most_the_wait_time() -> None:
    model = Model()
    [(who, results)] = run(model, [["alone"]], wait_s=0.01)  # type: ignore[misc]
    assert results == [("alone", 1)] and model.batches == [["alone"]]


def test_a_failed_batch_fails_its_requests_and_the_next_batch_runs() -> None:
    model = Model(fail=True)
    answers = run(model, [["a"], ["b"]])
    assert all(isinstance(a, RuntimeError) for a in answers)

    async def recovers() -> object:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_batch=4, wait_s=0.0, max_queue=10)
            batcher.start()
            with pytest.raises(RuntimeError):
                await batcher.submit(["x"], 1)
            model.fail = False
            try:
                return await batcher.submit(["y"], 1)
            finally:
                await batcher.stop()

    assert asyncio.run(recovers())[1] == [("y", 1)]  # type: ignore[index]


def test_a_full_queue_refuses_new_texts() -> None:
    gate = threading.Event()
    model = Model(gate)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, pool, max_batch=2, wait_s=0.0, max_queue=4)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit(["a", "b", "c"], 1))
            await asyncio.sleep(0.05)
            assert batcher.queued == 3
            with pytest.raises(Overloaded):
                await batcher.submit(["d", "e"], 1)
            gate.set()
            await first
            assert batcher.queued == 0
            await batcher.stop()

    asyncio.run(main())
