"""The answer bank: approved replies deduplicated by content id, as built from question → answer
pairs (ml.tasks.answers.data) and as stored in a snapshot or an artifact (answers.parquet).

An answer's id is ``a-`` + sha256 of its whitespace-collapsed, case-folded text: replies that
differ only in spacing or case are one bank entry, and every pair keeps its answer's id, so
the question → answer mapping survives deduplication.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BANK_FILE = "answers.parquet"

_SPACE = re.compile(r"\s+")


class EmptyBankError(ValueError):
    """An answer bank with no answers: nothing to rank."""


def clean_answer(text: str) -> str:
    """The stored reply: CRLF → LF, outer whitespace stripped (placeholders kept as written)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def answer_id(text: str) -> str:
    """A content id: replies equal up to whitespace and case share it."""
    key = _SPACE.sub(" ", text).strip().casefold()
    return "a-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def build_bank(pairs: list[dict[str, Any]]) -> pa.Table:
    """The deduplicated answer bank of `pairs` (each with answer_id, answer, intent).

    One row per answer id: the first reply text seen, every intent it answers (sorted) and
    how many questions map to it. Raises EmptyBankError when there is no answer.
    """
    bank: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        entry = bank.setdefault(
            pair["answer_id"],
            {"answer_id": pair["answer_id"], "answer": pair["answer"], "intents": set(), "n": 0},
        )
        entry["n"] += 1
        if pair.get("intent"):
            entry["intents"].add(pair["intent"])
    if not bank:
        raise EmptyBankError("the answer bank is empty: no question/answer pair has an answer")
    rows = sorted(bank.values(), key=lambda e: e["answer_id"])
    return pa.table(
        {
            "answer_id": [e["answer_id"] for e in rows],
            "answer": [e["answer"] for e in rows],
            "intents": pa.array([sorted(e["intents"]) for e in rows], pa.list_(pa.string())),
            "n_questions": pa.array([e["n"] for e in rows], pa.int64()),
        }
    )


def read_bank(path: Path) -> pa.Table:
    """An answers.parquet bank; EmptyBankError when it has no rows."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"answer bank {path} not found")
    bank = pq.read_table(path)
    if bank.num_rows == 0:
        raise EmptyBankError(f"answer bank {path} is empty: nothing to rank")
    return bank
