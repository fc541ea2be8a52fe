"""The one latency timer of every task type (ml.tasks.latency), on calls of known cost; each
task's evaluate tests check the figures it records under the registry's names."""

from __future__ import annotations

import time

import pytest

from ml.tasks.latency import LATENCY_SAMPLES, per_message_ms, throughput_per_s


class Sleeper:
    """A model stand-in: `ms` milliseconds per text, and a record of every call's texts."""

    def __init__(self, ms: float) -> None:
        self.ms = ms
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> None:
        self.calls.append(texts)
        time.sleep(self.ms * len(texts) / 1000)


def test_per_message_times_each_text_alone_after_one_warm_up() -> None:
    texts = [f"text {i}" for i in range(LATENCY_SAMPLES + 10)]
    model = Sleeper(ms=5.0)

    figures = per_message_ms(model, texts)

    assert list(figures) == ["latency_ms_p50", "latency_ms_p95"]
    # The warm-up call, then the first LATENCY_SAMPLES texts one at a time.
    assert model.calls == [[texts[0]]] + [[t] for t in texts[:LATENCY_SAMPLES]]
    assert 5.0 <= figures["latency_ms_p50"] <= figures["latency_ms_p95"]
    assert figures["latency_ms_p50"] == round(figures["latency_ms_p50"], 3)


def test_per_message_samples_prefix_and_no_texts() -> None:
    model = Sleeper(ms=1.0)
    figures = per_message_ms(model, ["a", "b", "c", "d"], samples=2, prefix="")
    assert set(figures) == {"ms_p50", "ms_p95"}  # answers adds its own prefix and suffix
    assert model.calls == [["a"], ["a"], ["b"]]
    assert per_message_ms(model, []) == {}


def test_throughput_pushes_the_texts_repeated_through_one_call() -> None:
    model = Sleeper(ms=1.0)
    per_second = throughput_per_s(model, ["a", "b", "c"], samples=50)
    assert model.calls == [(["a", "b", "c"] * 17)[:50]]
    # 1 ms a text: at most 1000 texts a second, and not far below it.
    assert 200 < per_second <= 1000
    assert per_second == pytest.approx(round(per_second, 1))
    assert throughput_per_s(model, []) == 0.0
