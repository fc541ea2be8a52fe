"""A served model (ml.serving.models): a batch runs in chunks of texts of similar length and
its answers come back in the caller's order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ml.serving.models import ServedModel


def fake_task(calls: list[list[str]]) -> Any:
    def predict_loaded(loaded: object, texts: list[str], top_k: int) -> list[dict[str, Any]]:
        calls.append(list(texts))
        return [{"text": t, "intent": f"label-of-{t}"} for t in texts]

    return SimpleNamespace(predict_loaded=predict_loaded)


def served(chunk: int | None, calls: list[list[str]]) -> ServedModel:
    return ServedModel("m", 1, "intent", "0" * 64, "torch", object(), fake_task(calls), chunk)


def test_chunks_of_similar_length_answers_in_order() -> None:
    calls: list[list[str]] = []
    texts = ["a" * 9, "b", "c" * 5, "d" * 2, "e" * 7]
    answers = served(2, calls).predict(texts, 1)
    assert [a["text"] for a in answers] == texts
    assert calls == [["b", "d" * 2], ["c" * 5, "e" * 7], ["a" * 9]]


def test_without_a_chunk_size_one_call() -> None:
    calls: list[list[str]] = []
    served(None, calls).predict(["x", "yy", "z"], 1)
    assert calls == [["x", "yy", "z"]]
