"""A few scored test examples beside an evaluation's metrics (examples.json in its report), for
the registry page: an entity tagger's spans against the gold ones, an answer ranker's top
replies. Redacted only: a labeled file's texts are customer text (names, order ids), so

- every piece of text outside a span goes through ml.ingest.redact (e-mails, phones, cards,
  order and account ids become placeholders), and what a span covers is never kept: only its
  type (`[person_name]`);
- an example whose joined, masked text the redactor would still change (PII across a span's
  edge) is left out, as is a question or reply it would change at all after redaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXAMPLES_FILE = "examples.json"
_WORD_HEAD = re.compile(r"^\w+")
_WORD_TAIL = re.compile(r"\w+$")
SHOWN = 6  # examples kept per report: the misses first, then the hits


def _redact(text: str) -> str:
    from ml.ingest.redact import redact

    return redact(text)


def _masked(segments: list[dict[str, Any]]) -> str:
    return "".join(s["text"] if "text" in s else f"[{s['gold'] or s['pred']}]" for s in segments)


def entity_segments(
    text: str, gold: Sequence[tuple[str, int, int]], predicted: Sequence[tuple[str, int, int]]
) -> list[dict[str, Any]] | None:
    """`text` cut at every span edge: {"text": redacted piece} outside spans, {"gold": type or
    None, "pred": type or None} over them (the covered text dropped); None when the redactor
    finds PII in the masked whole."""
    edges = sorted({0, len(text), *(p for _, s, e in [*gold, *predicted] for p in (s, e))})

    def cover(spans: Sequence[tuple[str, int, int]], start: int, end: int) -> int | None:
        return next((i for i, (_, s, e) in enumerate(spans) if s <= start and end <= e), None)

    segments: list[dict[str, Any]] = []
    last: tuple[int | None, int | None] | None = None
    for start, end in zip(edges, edges[1:], strict=False):
        if start >= end:
            continue
        g, p = cover(gold, start, end), cover(predicted, start, end)
        if g is None and p is None:
            piece = text[start:end]
            # A word a span cuts in two stays masked whole: no fragment of a name or id shows.
            if start > 0 and text[start - 1].isalnum():
                piece = _WORD_HEAD.sub("", piece)
            if end < len(text) and text[end].isalnum():
                piece = _WORD_TAIL.sub("", piece)
            if piece:
                segments.append({"text": _redact(piece)})
            last = None
        elif (g, p) != last:  # a new span (or overlap of spans): its types only
            segments.append(
                {
                    "gold": gold[g][0] if g is not None else None,
                    "pred": predicted[p][0] if p is not None else None,
                }
            )
            last = (g, p)
    masked = _masked(segments)
    return segments if _redact(masked) == masked else None


def entity_examples(
    texts: Sequence[str],
    gold: Sequence[Sequence[tuple[str, int, int]]],
    predicted: Sequence[Sequence[tuple[str, int, int]]],
    shown: int = SHOWN,
) -> list[dict[str, Any]]:
    """Up to `shown` examples with spans, those the tagger got wrong first."""
    wrong, right = [], []
    for text, g, p in zip(texts, gold, predicted, strict=True):
        if not g and not p:
            continue
        exact = set(map(tuple, g)) == set(map(tuple, p))
        bucket = right if exact else wrong
        if len(bucket) >= shown:
            continue
        segments = entity_segments(text, list(g), list(p))
        if segments is not None:
            bucket.append({"segments": segments, "exact": exact})
    return (wrong + right)[:shown]


def ranking_examples(
    questions: Sequence[str],
    gold_ids: Sequence[str],
    scores: Any,
    bank_ids: Sequence[str],
    bank_answers: Sequence[str],
    shown: int = SHOWN,
    top_k: int = 5,
) -> list[dict[str, Any]]:
    """Up to `shown` questions with their top `top_k` replies (redacted), the gold one marked,
    and the gold reply's rank (None: not in the bank); questions ranked worst first."""
    import numpy as np

    order = np.argsort(-scores, axis=1, kind="stable")
    position = {a: i for i, a in enumerate(bank_ids)}
    ranked = []
    for q, gold in enumerate(gold_ids):
        where = position.get(gold)
        rank = int(np.flatnonzero(order[q] == where)[0]) + 1 if where is not None else None
        ranked.append((rank if rank is not None else len(bank_ids) + 1, q, rank))
    misses = [r for r in ranked if r[2] != 1]
    hits = [r for r in ranked if r[2] == 1]
    chosen = sorted(misses, key=lambda r: (-r[0], r[1]))[: shown - min(2, len(hits))]
    chosen += hits[: shown - len(chosen)]
    out = []
    for _, q, rank in chosen:
        question = _redact(questions[q])
        if _redact(question) != question:
            continue
        replies = []
        for i in order[q][:top_k]:
            reply = _redact(bank_answers[i])
            if _redact(reply) != reply:
                reply = "[reply withheld: personal data]"
            replies.append({"answer": reply, "gold": bank_ids[i] == gold_ids[q]})
        out.append({"question": question, "gold_rank": rank, "top": replies})
    return out


def write_examples(report_dir: Path, examples: list[dict[str, Any]]) -> Path:
    path = Path(report_dir) / EXAMPLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(examples, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
