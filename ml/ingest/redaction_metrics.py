"""Measure a redactor: recall per PII kind on known values, and how often PII-free text changes.

Used by the redaction tests (targets) and by `bench/redaction.py` (ours against Presidio).
A value counts as caught when it no longer appears in the redacted text it was seeded into.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

Redactor = Callable[[str], str]


@dataclass
class Recall:
    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    misses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, value: str, redacted: str) -> None:
        self.total[kind] += 1
        if value.lower() in redacted.lower():
            self.misses[kind].append(value)
        else:
            self.found[kind] += 1

    def rate(self, kind: str) -> float:
        return self.found[kind] / self.total[kind] if self.total[kind] else float("nan")


def generated_cases(files: Iterable[Path], pii: dict[str, list[str]]) -> list[tuple[str, list]]:
    """(turn text, [(kind, value) seeded in it]) for every turn of a generated day."""
    values = [(kind, v) for kind, vs in pii.items() for v in vs]
    cases = []
    for path in files:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                turns = record["turns"]
            except (ValueError, KeyError, TypeError):
                continue
            for turn in turns if isinstance(turns, list) else []:
                text = turn.get("text") if isinstance(turn, dict) else None
                if isinstance(text, str):
                    cases.append((text, [(k, v) for k, v in values if v in text]))
    return cases


def abcd_cases(path: Path) -> list[tuple[str, list, dict[str, list[str]]]]:
    """(customer/agent turn, [(kind, value) in it], the scenario's values) for ABCD."""
    kinds = {"customer_name": "name", "email": "email", "phone": "phone", "username": "username"}
    cases = []
    for convo in json.loads(Path(path).read_text(encoding="utf-8")):
        personal = convo["scenario"].get("personal") or {}
        values = [(kinds[k], str(personal[k])) for k in kinds if personal.get(k)]
        order_id = (convo["scenario"].get("order") or {}).get("order_id")
        if order_id:
            values.append(("order_id", str(order_id)))
        known = {k: [str(personal[k])] for k in kinds if personal.get(k)}
        if order_id:
            known["order_id"] = [str(order_id)]
        for speaker, text in convo["original"]:
            if speaker == "action":
                continue
            found = [(k, v) for k, v in values if v.lower() in text.lower()]
            # A full name also shows up as its parts ("Crystal" in "thanks Crystal").
            for k, v in values:
                if k == "name":
                    found += [(k, p) for p in v.split() if p.lower() in text.lower().split()]
            cases.append((text, sorted(set(found)), known))
    return cases


def recall(cases: Iterable[tuple[str, list]], redactor: Redactor) -> tuple[Recall, float, int]:
    """Recall per kind over texts with PII, and the share of PII-free texts the redactor changed."""
    result = Recall()
    clean = changed = 0
    for text, values in cases:
        out = redactor(text)
        if not values:
            clean += 1
            changed += out != text
        for kind, value in values:
            result.add(kind, value, out)
    return result, (changed / clean if clean else 0.0), clean


def false_change_rate(texts: Iterable[str], redactor: Redactor) -> tuple[float, int, list[str]]:
    """Share of (presumed PII-free) texts the redactor changes, with a few examples."""
    n = changed = 0
    examples: list[str] = []
    for text in texts:
        n += 1
        out = redactor(text)
        if out != text:
            changed += 1
            if len(examples) < 5:
                examples.append(f"{text!r} -> {out!r}")
    return (changed / n if n else 0.0), n, examples
