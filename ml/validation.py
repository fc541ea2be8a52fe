"""The Great Expectations gate on a day's canonical rows, and its report.

Parsing already quarantines bad records one by one; this suite checks the day as a whole
(uniqueness, interval, allowed values, leftover PII, volume), so a systemic fault fails the
task and stops the Asset event instead of flowing into training.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.parse import MAX_TURN_CHARS
from ml.schema import CHANNELS

log = logging.getLogger(__name__)

SUITE_NAME = "canonical_transcripts"
# A raw e-mail address or a long digit run left in the text means redaction missed something.
RAW_PII_REGEX = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"
)
LANGUAGE_REGEX = r"^(?:[a-z]{2,3}(?:-[A-Z]{2})?|und)$"


class DataQualityError(RuntimeError):
    """The day failed its data-quality gate; the message lists the failed expectations."""


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    failed: list[dict[str, Any]]  # expectation, column, unexpected count, a few examples
    report_path: str
    evaluated: int


def _suite(day: date, known_intents: frozenset[str]) -> Any:
    import great_expectations as gx

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    e = gx.expectations
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        expectations=[
            e.ExpectTableRowCountToBeBetween(min_value=1),
            e.ExpectColumnValuesToNotBeNull(column="conversation_id"),
            e.ExpectColumnValuesToBeUnique(column="conversation_id"),
            e.ExpectColumnValuesToBeBetween(
                column="started_at",
                min_value=start,
                max_value=start + timedelta(days=1),
                strict_max=True,
            ),
            e.ExpectColumnValuesToBeInSet(column="channel", value_set=[*CHANNELS, "unknown"]),
            e.ExpectColumnValuesToMatchRegex(column="language", regex=LANGUAGE_REGEX),
            e.ExpectColumnValuesToBeInSet(column="intent", value_set=sorted(known_intents)),
            e.ExpectColumnValueLengthsToBeBetween(
                column="text", min_value=1, max_value=MAX_TURN_CHARS * 10
            ),
            e.ExpectColumnValuesToNotMatchRegex(column="text", regex=RAW_PII_REGEX),
        ],
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    cols = ["conversation_id", "started_at", "channel", "language", "intent", "text"]
    return table.select(cols).to_pandas()


def run_suite(
    table: pa.Table, day: date, known_intents: frozenset[str], report_dir: Path
) -> ValidationOutcome:
    """Validate the day's rows; write the GX result as JSON and a readable HTML page."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("lake")
        .add_dataframe_asset(f"transcripts_{day.isoformat()}")
        .add_batch_definition_whole_dataframe("day")
    )
    suite = context.suites.add(_suite(day, known_intents))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_{day.isoformat()}", data=batch, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": _frame(table)})
    failed = [_failure(r) for r in result.results if not r.success]
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "validation.json").write_text(
        json.dumps(result.to_json_dict(), indent=2, default=str)
    )
    html = report_dir / "validation.html"
    html.write_text(_html(day, result.success, result.results))
    return ValidationOutcome(bool(result.success), failed, str(html), len(result.results))


def _failure(r: Any) -> dict[str, Any]:
    res = r.result or {}
    return {
        "expectation": r.expectation_config.type,
        "column": r.expectation_config.kwargs.get("column"),
        "unexpected_count": res.get("unexpected_count", res.get("observed_value")),
        "examples": [str(x)[:200] for x in (res.get("partial_unexpected_list") or [])[:5]],
    }


def _html(day: date, success: bool, results: list[Any]) -> str:
    from html import escape

    rows = "".join(
        f"<tr class={'ok' if r.success else 'fail'}><td>{'pass' if r.success else 'FAIL'}</td>"
        f"<td>{escape(r.expectation_config.type)}</td>"
        f"<td>{escape(str(r.expectation_config.kwargs.get('column', '')))}</td>"
        f"<td>{escape(str((r.result or {}).get('unexpected_count', (r.result or {}).get('observed_value', ''))))}</td>"
        f"<td>{escape(', '.join(str(x)[:80] for x in ((r.result or {}).get('partial_unexpected_list') or [])[:5]))}</td></tr>"
        for r in results
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>Validation {day}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd}"
        ".fail{background:#fdd}</style>"
        f"<h1>Transcripts {day}: {'passed' if success else 'FAILED'}</h1>"
        f"<p>Suite <code>{SUITE_NAME}</code>, Great Expectations.</p>"
        "<table><tr><th>result</th><th>expectation</th><th>column</th><th>unexpected</th>"
        f"<th>examples</th></tr>{rows}</table>"
    )
