"""What a retrain learns from the corrections: labeled examples for the lake-fed intent snapshot
(ml.snapshots.lake_window.make_snapshot).

Each corrected prediction's message, as the `predictions` table logged it (redacted), becomes
an example labeled with the agents' label:

- one agent: their label (their latest: the table keeps one row per agent);
- several agents: the majority label; a tie (1-1, 2-2) is dropped: neither label is trusted
  until another agent breaks it (counted as `disagreements_dropped`);
- the same message corrected on several predictions: one example (majority again, ties
  dropped), keyed by its smallest prediction id, so one text never lands in two splits;
- a prediction no longer in the `predictions` table (erased, or past its retention) has no
  text: skipped (`missing_text`).

The example's key (its `conversation_id` column) is the prediction id: the snapshot splits it
by ml.snapshots.writer.split_of like any conversation, so a correction in the test split
never trains. A message that is also a labeled transcript in the window takes the
correction's label (the agent saw the model get it wrong in production; the transcript row is
dropped, `transcripts_overridden`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml import delta
from ml.feedback.table import FeedbackTable
from ml.storage import Location

COLUMNS = ["conversation_id", "text", "intent"]


@dataclass
class Corrections:
    rows: pa.Table  # COLUMNS: prediction id, redacted text, corrected label
    info: dict[str, Any] = field(default_factory=dict)  # the snapshot's `feedback` record


def majority(labels: list[str]) -> str | None:
    """The label most agents gave; None on a tie for the most."""
    ranked = Counter(labels).most_common(2)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def corrections(
    feedback_root: Location,
    predictions_root: Location,
    model: str,
    end: date | None = None,
    as_of: datetime | None = None,
) -> Corrections:
    """The corrections of `model`'s predictions made up to `end` (all when None), resolved and
    joined with their logged texts; `as_of` a time reads both tables as they were then."""
    table = FeedbackTable(feedback_root)
    version = delta.open_table(feedback_root, as_of)
    rows = table.read(
        ["prediction_id", "label", delta.PARTITION],
        model=model,
        as_of=None if version is None else version.version(),
    )
    if end is not None:
        rows = rows.filter(pc.less_equal(rows.column(delta.PARTITION), end.isoformat()))
    by_prediction: dict[str, list[str]] = {}
    days: dict[str, str] = {}
    for pid, label, day in zip(
        *(rows.column(c).to_pylist() for c in rows.column_names), strict=True
    ):
        by_prediction.setdefault(pid, []).append(label)
        days[pid] = day
    resolved = {pid: majority(labels) for pid, labels in by_prediction.items()}
    ties = sum(label is None for label in resolved.values())
    texts = _texts(predictions_root, model, {p for p, lbl in resolved.items() if lbl}, days, as_of)
    by_text: dict[str, list[tuple[str, str]]] = {}
    for pid, label in resolved.items():
        if label is not None and pid in texts:
            by_text.setdefault(texts[pid], []).append((pid, label))
    examples = []
    for text, pairs in by_text.items():
        label = majority([lbl for _, lbl in pairs])
        if label is None:
            ties += 1
            continue
        examples.append((min(pid for pid, _ in pairs), text, label))
    examples.sort()
    out = pa.table(
        {name: pa.array([e[i] for e in examples], pa.string()) for i, name in enumerate(COLUMNS)}
    )
    digest = hashlib.sha256(json.dumps(examples, ensure_ascii=False).encode()).hexdigest()
    info = {
        "corrections": len(examples),
        "feedback_rows": rows.num_rows,
        "predictions_corrected": len(by_prediction),
        "disagreements_dropped": ties,
        "missing_text": sum(1 for p, lbl in resolved.items() if lbl and p not in texts),
        "feedback_version": None if version is None else version.version(),
        "content_hash": digest,
        "resolution": "majority of agents per prediction, ties dropped",
    }
    return Corrections(out, info)


def _texts(
    root: Location,
    model: str,
    ids: set[str],
    days: dict[str, str],
    as_of: datetime | None,
) -> dict[str, str]:
    """The logged (redacted) text of each prediction among `ids`, read from its day only."""
    import pyarrow.dataset as ds

    table = delta.open_table(root, as_of)
    if table is None or not ids:
        return {}
    wanted = sorted({days[p] for p in ids})
    found = table.to_pyarrow_dataset().to_table(
        columns=["prediction_id", "text"],
        filter=ds.field(delta.PARTITION).isin(wanted)
        & (ds.field("model") == model)
        & ds.field("prediction_id").isin(sorted(ids)),
    )
    return dict(zip(*(found.column(c).to_pylist() for c in found.column_names), strict=True))


def apply(transcripts: pa.Table, fixes: Corrections) -> tuple[pa.Table, int]:
    """The window's labeled transcripts (COLUMNS) plus the corrected examples; a transcript
    with the same text as a correction is dropped (the correction wins). Also returns how many
    were dropped."""
    if fixes.rows.num_rows == 0:
        return transcripts, 0
    same = pc.is_in(transcripts.column("text"), value_set=fixes.rows.column("text"))
    kept = transcripts.filter(pc.invert(pc.fill_null(same, False)))
    both = pa.concat_tables([kept.select(COLUMNS).cast(fixes.rows.schema), fixes.rows])
    return both, transcripts.num_rows - kept.num_rows
