"""The Great Expectations gate on a day's canonical rows, and its report.

Parsing already quarantines bad records one by one; this suite checks the day as a whole
(uniqueness, interval, allowed values, leftover PII, volume), so a systemic fault fails the
task and stops the Asset event instead of flowing into training.
"""

from __future__ import annotations

import json
import logging
import math
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
# Bump when the suite changes; stored in every report and manifest.
SUITE_VERSION = 2
# A raw e-mail address or a card-like digit run left in the text means redaction missed something.
RAW_PII_REGEX = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"
)
SPEAKERS_REGEX = r"^(?:customer|agent|system)(?:,(?:customer|agent|system))*$"
# Accepted `language` values; `und` (undetermined) for sources that do not say.
DEFAULT_LANGUAGES = ("en", "en-US", "en-GB", "und")
# A day with fewer rows than this share of the trailing days' mean fails (a feed that halved).
VOLUME_MIN_SHARE = 0.5
VOLUME_MIN_HISTORY = 3  # trailing days needed before the volume check applies


class DataQualityError(RuntimeError):
    """The day failed its data-quality gate; the message lists the failed expectations."""

    def __init__(self, message: str, failed: list[dict[str, Any]] | None = None, report: str = ""):
        super().__init__(message)
        self.failed = failed or []
        self.report = report


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    failed: list[dict[str, Any]]  # expectation, column, unexpected count, a few examples
    report_path: str  # a short summary page linking the Data Docs page
    data_docs: str  # the GX Data Docs page of this validation
    evaluated: int


def allowed_languages() -> tuple[str, ...]:
    raw = os.environ.get("INTENTFLOW_LANGUAGES", "")
    return tuple(x.strip() for x in raw.split(",") if x.strip()) or DEFAULT_LANGUAGES


def min_volume(trailing_rows: list[int]) -> int:
    """The fewest rows a day may have given the trailing days' counts (1 without history)."""
    if len(trailing_rows) < VOLUME_MIN_HISTORY:
        return 1
    return max(1, math.ceil(VOLUME_MIN_SHARE * sum(trailing_rows) / len(trailing_rows)))


def build_suite(
    day: date,
    known_intents: frozenset[str],
    min_rows: int = 1,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
) -> Any:
    """The suite as code: one expectation per rule, each saying why in `meta`."""
    import great_expectations as gx

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    e = gx.expectations
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        meta={"version": SUITE_VERSION},
        expectations=[
            e.ExpectTableRowCountToBeBetween(
                min_value=min_rows, meta={"rule": "volume against the trailing days"}
            ),
            e.ExpectColumnValuesToNotBeNull(column="conversation_id", meta={"rule": "ids present"}),
            e.ExpectColumnValuesToBeUnique(column="conversation_id", meta={"rule": "ids unique"}),
            e.ExpectColumnValuesToBeBetween(
                column="started_at",
                min_value=start,
                max_value=start + timedelta(days=1),
                strict_max=True,
                meta={"rule": "started_at inside the data interval"},
            ),
            e.ExpectColumnValuesToMatchRegex(
                column="speakers", regex=SPEAKERS_REGEX, meta={"rule": "speakers allowed"}
            ),
            e.ExpectColumnValuesToBeBetween(
                column="longest_turn",
                min_value=1,
                max_value=MAX_TURN_CHARS,
                meta={"rule": "turn length bounds"},
            ),
            e.ExpectColumnValueLengthsToBeBetween(
                column="text",
                min_value=1,
                max_value=MAX_TURN_CHARS * 10,
                meta={"rule": "model text length bounds"},
            ),
            e.ExpectColumnValuesToBeInSet(
                column="channel", value_set=[*CHANNELS, "unknown"], meta={"rule": "channel"}
            ),
            e.ExpectColumnValuesToBeInSet(
                column="language", value_set=list(languages), meta={"rule": "language allowed"}
            ),
            e.ExpectColumnValuesToBeInSet(
                column="intent",
                value_set=sorted(known_intents),
                meta={"rule": "intent in the known label set (null: unlabeled)"},
            ),
            e.ExpectColumnValuesToNotMatchRegex(
                column="text", regex=RAW_PII_REGEX, meta={"rule": "no raw PII in the model text"}
            ),
            e.ExpectColumnValuesToBeNull(
                column="pii_left",
                meta={"rule": "no PII the redactor detects, in any turn, after redaction"},
            ),
        ],
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    """The columns the suite reads, with per-row facts about the nested turns (in Arrow)."""
    import numpy as np
    import pyarrow.compute as pc

    frame = table.select(
        ["conversation_id", "started_at", "channel", "language", "intent", "text"]
    ).to_pandas()
    turns = table.column("turns").combine_chunks()
    speaker = pc.fill_null(pc.struct_field(turns.values, "speaker"), "")
    speakers = pa.ListArray.from_arrays(turns.offsets, speaker)
    frame["speakers"] = pc.binary_join(speakers, ",").to_numpy(zero_copy_only=False)
    lengths = pc.utf8_length(pc.fill_null(pc.struct_field(pc.list_flatten(turns), "text"), ""))
    parents = pc.list_parent_indices(turns)
    longest = np.zeros(table.num_rows, np.int64)
    if len(parents):
        by_row = pa.table({"row": parents, "n": lengths}).group_by("row").aggregate([("n", "max")])
        longest[by_row["row"].to_numpy()] = by_row["n_max"].to_numpy()
    frame["longest_turn"] = longest
    frame["pii_left"] = _pii_left(table)
    return frame


# Any text that could hold an e-mail, card, phone or IBAN; RE2 screens all turns at C speed and
# only these few go through the redactor's precise (Python) detectors.
_PII_CANDIDATE = r"@|\d[\d ().+-]{7,}\d|[A-Z]{2}\d{2}"


def _pii_left(table: pa.Table) -> list[str | None]:
    """Per row, the precise PII kinds the redactor still finds in any turn (None: clean)."""
    import pyarrow.compute as pc

    from ml.redact import pii_kinds

    turns = table.column("turns").combine_chunks()
    out: list[str | None] = [None] * table.num_rows
    if table.num_rows == 0:
        return out
    texts = pc.struct_field(pc.list_flatten(turns), "text")
    parents = pc.list_parent_indices(turns).to_numpy(zero_copy_only=False)
    candidates = pc.indices_nonzero(pc.match_substring_regex(texts, _PII_CANDIDATE)).to_pylist()
    found: dict[int, set[str]] = {}
    for i in candidates:
        kinds = pii_kinds(texts[i].as_py() or "")
        if kinds:
            found.setdefault(int(parents[i]), set()).update(kinds)
    for row, kinds in found.items():
        out[row] = ",".join(sorted(kinds))
    return out


def run_suite(
    table: pa.Table,
    day: date,
    known_intents: frozenset[str],
    report_dir: Path,
    min_rows: int = 1,
    run_name: str | None = None,
) -> ValidationOutcome:
    """Validate the day's rows; write the GX result (JSON), Data Docs, and a summary page."""
    frame = _frame(table)
    del table  # the frame holds what the suite reads: the day is not held twice
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    docs_dir = report_dir / "data_docs"
    context.add_data_docs_site(
        site_name="intentflow",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch = (
        context.data_sources.add_pandas("lake")
        .add_dataframe_asset(f"transcripts_{day.isoformat()}")
        .add_batch_definition_whole_dataframe("day")
    )
    suite = context.suites.add(build_suite(day, known_intents, min_rows, allowed_languages()))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_{day.isoformat()}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"ingest_{day.isoformat()}",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["intentflow"])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    run_id = RunIdentifier(run_name=run_name or day.isoformat())
    checkpoint_result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    [result] = checkpoint_result.run_results.values()
    failed = [_failure(r) for r in result.results if not r.success]
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "validation.json").write_text(
        json.dumps(result.to_json_dict(), indent=2, default=str)
    )
    pages = sorted((docs_dir / "validations").rglob("*.html"), key=lambda p: p.stat().st_mtime)
    docs_page = str(pages[-1]) if pages else str(docs_dir / "index.html")
    html = report_dir / "validation.html"
    html.write_text(_html(day, result.success, result.results, docs_page))
    return ValidationOutcome(
        bool(result.success), failed, str(html), docs_page, len(result.results)
    )


def _failure(r: Any) -> dict[str, Any]:
    res = r.result or {}
    return {
        "expectation": r.expectation_config.type,
        "column": r.expectation_config.kwargs.get("column"),
        "rule": (r.expectation_config.meta or {}).get("rule", ""),
        "unexpected_count": res.get("unexpected_count", res.get("observed_value")),
        "examples": [str(x)[:200] for x in (res.get("partial_unexpected_list") or [])[:5]],
    }


def _html(day: date, success: bool, results: list[Any], docs_page: str) -> str:
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
        f"<p>Suite <code>{SUITE_NAME}</code> v{SUITE_VERSION}, Great Expectations. "
        f"<a href='{escape(Path(docs_page).as_uri())}'>Full Data Docs page</a>.</p>"
        "<table><tr><th>result</th><th>expectation</th><th>column</th><th>unexpected</th>"
        f"<th>examples</th></tr>{rows}</table>"
    )
