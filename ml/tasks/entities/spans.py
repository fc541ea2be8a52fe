"""The labelling scheme of the entities task: the entity types, character spans and the checks a
span must pass to be trained on, BIO tags on word pieces, and tags decoded back into spans.

Labels. The fast tokenizer's offset mapping aligns character spans to word pieces: the first
piece of an entity gets B-<type>, its other pieces I-<type>, everything else O; special
tokens get no tag (the loss ignores them). Spans never cut a word (check_spans), and BERT's
pre-tokenizer splits on whitespace and punctuation, so no piece straddles a span boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ENTITY_TYPES = (
    "order_id",
    "invoice_id",
    "account_type",
    "person_name",
    "city",
    "country",
    "amount",
)


@dataclass(frozen=True, order=True)
class Span:
    start: int  # character offsets into the text, end exclusive
    end: int
    type: str


class SpanError(ValueError):
    """A span that cannot be trained on; `rule` names the check it broke."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


def _is_word_char(c: str) -> bool:
    return c.isalnum()


def check_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """The spans sorted, or SpanError for the first bad one."""
    ordered = sorted(spans)
    for s in ordered:
        where = f"span [{s.start}, {s.end}) {s.type!r}"
        if s.type not in ENTITY_TYPES:
            raise SpanError("unknown_entity_type", f"{where}: type not in {ENTITY_TYPES}")
        if not (0 <= s.start < s.end <= len(text)):
            raise SpanError(
                "span_out_of_range", f"{where} is outside the text (length {len(text)})"
            )
        if not text[s.start : s.end].strip():
            raise SpanError("span_empty", f"{where} covers only whitespace")
        if s.start > 0 and _is_word_char(text[s.start - 1]) and _is_word_char(text[s.start]):
            raise SpanError("span_splits_word", f"{where} starts inside a word")
        if s.end < len(text) and _is_word_char(text[s.end - 1]) and _is_word_char(text[s.end]):
            raise SpanError("span_splits_word", f"{where} ends inside a word")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end:
            raise SpanError(
                "span_overlap", f"spans [{a.start}, {a.end}) and [{b.start}, {b.end}) overlap"
            )
    return ordered


def bio_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str | None]:
    """One tag per token: B-/I-<type>, O, or None for special tokens (offset (0, 0))."""
    tags: list[str | None] = []
    for start, end in offsets:
        if start == end:
            tags.append(None)
            continue
        tag = "O"
        for s in spans:
            if s.start <= start and end <= s.end:
                # A piece that starts where the entity starts opens it; later pieces continue it.
                tag = f"{'B' if start == s.start else 'I'}-{s.type}"
                break
        tags.append(tag)
    return tags


def tag_names() -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")]


def decode(
    text: str,
    offsets: Sequence[tuple[int, int]],
    tags: Sequence[str],
    scores: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Spans from per-token tags (special tokens: offset (0, 0), skipped).

    An I- tag that does not continue an entity of its type starts one (seqeval's lenient
    reading); the span runs from its first piece's start to its last piece's end.
    """
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for i, ((start, end), tag) in enumerate(zip(offsets, tags, strict=True)):
        if start == end:
            continue
        prefix, _, kind = tag.partition("-")
        score = float(scores[i]) if scores is not None else 1.0
        if prefix == "I" and current is not None and current["type"] == kind:
            current["end"] = end
            current["_scores"].append(score)
            continue
        current = None
        if prefix in ("B", "I"):
            current = {"type": kind, "start": start, "end": end, "_scores": [score]}
            spans.append(current)
    for s in spans:
        s["text"] = text[s["start"] : s["end"]]
        s["score"] = round(float(np.mean(s.pop("_scores"))), 4)
    return [{k: s[k] for k in ("type", "text", "start", "end", "score")} for s in spans]
