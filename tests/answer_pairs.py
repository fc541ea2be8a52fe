"""Question → answer pair files in Bitext's columns for the answers task's tests (its own and
the answers DAG's): three intents, each with its own family of replies."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

HEADER = ["instruction", "intent", "start_offset", "end_offset", "response"]

# Three intents, each with its own distinct reply family; questions are templates with ids.
TOPICS = {
    "track_order": ("where is my order {n}", "Your parcel {n} ships from our depot tomorrow."),
    "get_refund": ("i want my money back for {n}", "A refund for {n} reaches your card in days."),
    "reset_password": ("cannot log in account {n}", "Reset the password of {n} on the login page."),
}
PHRASES = ["", "please ", "hi, ", "urgent: ", "hello, ", "help "]
ENDINGS = ["", " now", " today", " asap", " thanks", " again", " quickly"]


def write_pairs(path: Path, rows: list[dict[str, Any]]) -> Path:
    """`rows` (HEADER's keys) as a CSV file at `path`."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def pairs_csv(path: Path, per_intent: int = 40) -> Path:
    """`per_intent` pairs per TOPICS intent, each question with its entity span labelled and
    each reply distinct (CRLF inside, as Bitext's replies have)."""
    rows = []
    for intent, (question, reply) in TOPICS.items():
        for i in range(per_intent):
            # Up to 42 templates per intent (ids masked): enough groups for three splits.
            ending = ENDINGS[(i // len(PHRASES)) % len(ENDINGS)]
            q = PHRASES[i % len(PHRASES)] + question.format(n=1000 + i) + ending
            start = q.index(str(1000 + i))
            # Each reply differs (a variant number), like Bitext's one reply per request.
            rows.append(
                {
                    "instruction": q,
                    "intent": intent,
                    "start_offset": start,
                    "end_offset": start + 4,
                    "response": reply.format(n=1000 + i) + f"\r\nVariant {i % 7}.",
                }
            )
    return write_pairs(path, rows)
