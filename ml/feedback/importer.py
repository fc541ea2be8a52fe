"""`intentflow feedback import FILE`: corrections from a CSV (a header row: prediction_id,
label, agent_id, note) or JSON Lines file (one object a line, the same keys), with the route's
checks (ml.feedback.store).

Records that pass are written in one commit; each bad record is reported by file, line and
field and written aside, whole, to the rejects file (JSON Lines: file, line, field, reason,
record), so nothing is lost: fix it there and import the rejects file again. Importing a file
again is idempotent: its records come back `unchanged`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.config import Settings
from ml.feedback.lookup import PredictionIndex
from ml.feedback.store import (
    FIELDS,
    Outcome,
    allow_new_labels,
    champion_labels,
    check,
    lookup_days,
    write,
)
from ml.feedback.table import FeedbackTable


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (missing, not CSV or JSON Lines, a bad header)."""


@dataclass
class ImportResult:
    file: str
    records: int = 0
    written: int = 0
    summary: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # file, line, field, reason
    rejects_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line, record or None, why it could not be read) for each record of the file."""
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    csv_file = path.suffix.lower() in (".csv", ".tsv")
    with path.open(encoding="utf-8", newline="") as fh:
        if csv_file:
            yield from _csv(path, fh)
            return
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), None
            except ValueError as exc:
                yield number, line.rstrip("\n"), f"not a JSON object: {exc.msg}"


def _csv(path: Path, fh: Any) -> Iterator[tuple[int, Any, str | None]]:
    reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [f for f in FIELDS if f != "note" and f not in header]
    unknown = [h for h in header if h not in FIELDS]
    if missing or unknown:
        what = f"missing column(s) {', '.join(missing)}" if missing else ""
        what += ("; " if what and unknown else "") + (
            f"unknown column(s) {', '.join(unknown)}" if unknown else ""
        )
        raise ImportFileError(f"{path}: line 1 (header): {what}; expected {', '.join(FIELDS)}")
    reader.fieldnames = header
    for row in reader:
        if None in row:  # more cells than the header names
            yield reader.line_num, row, "more cells than the header has columns"
        else:
            yield reader.line_num, {k: v for k, v in row.items() if v != ""}, None


def import_file(
    cfg: Settings,
    model: str,
    path: Path,
    *,
    rejects: Path | None = None,
    new_labels: bool | None = None,
) -> ImportResult:
    """Import the corrections of `path` for `model`; the bad records go to `rejects` (default
    `<path>.rejected.jsonl`, written only when there are some)."""
    result = ImportResult(str(path))
    lines: list[int] = []
    items: list[Any] = []
    outcomes: list[Outcome] = []
    unreadable: list[tuple[Outcome, Any]] = []
    for number, record, why in read_records(path):
        result.records += 1
        if why is not None:
            unreadable.append((Outcome(number, None, None, "rejected", "-", why, 422), record))
            continue
        lines.append(number)
        items.append(record)
    allow = allow_new_labels() if new_labels is None else new_labels
    index = PredictionIndex(cfg.predictions, lookup_days())
    checked = check(cfg, model, items, index, labels=champion_labels(cfg, model), new_labels=allow)
    for outcome, number in zip(checked.outcomes, lines, strict=True):
        outcome.index = number  # the file's line
    result.written = write(FeedbackTable(cfg.feedback), [checked])
    outcomes = checked.outcomes + [o for o, _ in unreadable]
    statuses = ("created", "replaced", "unchanged", "duplicate", "rejected")
    result.summary = {s: sum(o.status == s for o in outcomes) for s in statuses}
    raw = {o.index: r for o, r in unreadable} | {n: r for n, r in zip(lines, items, strict=True)}
    bad = sorted((o for o in outcomes if o.status == "rejected"), key=lambda o: o.index)
    result.rejected = [
        {"file": str(path), "line": o.index, "field": o.field, "reason": o.reason} for o in bad
    ]
    if bad:
        target = rejects or path.with_name(path.name + ".rejected.jsonl")
        _write_rejects(target, [{**r, "record": raw[r["line"]]} for r in result.rejected])
        result.rejects_file = str(target)
    return result


def _write_rejects(target: Path, rows: list[dict[str, Any]]) -> None:
    """The rejected records, whole (notes may hold personal data: the file is private, 0600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, target)
