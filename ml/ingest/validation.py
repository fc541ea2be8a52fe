"""The Great Expectations gate on a day's canonical rows, and its report.

Parsing quarantines every record that breaks a per-record rule (ml/ingest/parse.py), so one bad
record never fails a day. This suite checks what only the day shows (volume against the
trailing days; ids unique) and re-checks the per-record rules and redaction as a backstop:
those fail only when a systemic fault (a bug, a changed setting) lets bad rows through, which
then fails the task and stops the Asset event instead of flowing into training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.config import DEFAULT_LANGUAGES, allowed_languages
from ml.ingest.parse import ALLOWED_CHANNELS, MAX_TEXT_CHARS, MAX_TURN_CHARS
from ml.ingest.results import FailedExpectation

log = logging.getLogger(__name__)

SUITE_NAME = "canonical_transcripts"
# Bump when the suite changes; stored in every report and manifest.
SUITE_VERSION = 3
SPEAKERS_REGEX = r"^(?:customer|agent|system)(?:,(?:customer|agent|system))*$"
# A day with fewer rows than this share of the trailing days' mean fails (a feed that halved).
VOLUME_MIN_SHARE = 0.5
VOLUME_MIN_HISTORY = 3  # trailing days needed before the volume check applies
# Conversation ids kept per failed expectation (and batch) in the results and the summary.
MAX_IDS = 5
# No record value in any result, report or Data Docs page: a value may be customer text, or
# markup that Data Docs would render (a `channel` of `<img onerror=...>`). GX keeps the failing
# rows' index labels instead, and the frame's index is the conversation id (see `_frame`); not
# `unexpected_index_column_names`, which with values excluded keeps every failing row's id in
# one entry that `partial_unexpected_count` does not cut (GX 1.x).
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_IDS,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


class DataQualityError(RuntimeError):
    """The day failed its data-quality gate; the message lists the failed expectations."""

    def __init__(
        self, message: str, failed: list[FailedExpectation] | None = None, report: str = ""
    ):
        super().__init__(message)
        self.failed = failed or []
        self.report = report


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    failed: list[FailedExpectation]
    report_path: str  # a short summary page linking the Data Docs page
    data_docs: str  # the GX Data Docs page of this validation
    evaluated: int


def min_volume(trailing_rows: list[int]) -> int:
    """The fewest rows a day may have given the trailing days' counts (1 without history)."""
    if len(trailing_rows) < VOLUME_MIN_HISTORY:
        return 1
    return max(1, math.ceil(VOLUME_MIN_SHARE * sum(trailing_rows) / len(trailing_rows)))


def build_day_suite(min_rows: int = 1) -> Any:
    """What holds for the day as a whole (checked on its row count, in no memory)."""
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=f"{SUITE_NAME}_day",
        meta={"version": SUITE_VERSION},
        expectations=[
            gx.expectations.ExpectTableRowCountToBeBetween(
                min_value=min_rows, meta={"rule": "volume against the trailing days"}
            ),
        ],
    )


def build_suite(
    day: date,
    known_intents: frozenset[str],
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
) -> Any:
    """The rows' suite as code: one expectation per rule, each saying why in `meta`."""
    import great_expectations as gx

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    e = gx.expectations
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        meta={"version": SUITE_VERSION},
        expectations=[
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
                max_value=MAX_TEXT_CHARS,
                meta={"rule": "model text length bounds"},
            ),
            e.ExpectColumnValuesToBeInSet(
                column="channel", value_set=sorted(ALLOWED_CHANNELS), meta={"rule": "channel"}
            ),
            e.ExpectColumnValuesToBeInSet(
                column="language", value_set=list(languages), meta={"rule": "language allowed"}
            ),
            e.ExpectColumnValuesToBeInSet(
                column="intent",
                value_set=sorted(known_intents),
                meta={"rule": "intent in the known label set (null: unlabeled)"},
            ),
            e.ExpectColumnValuesToBeNull(
                column="pii_left",
                meta={
                    "rule": "no PII the redactor detects, in any turn, the model text, the id "
                    "or the source, after redaction"
                },
            ),
        ],
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    """The columns the suite reads, with per-row facts about the nested turns (in Arrow).

    Indexed by conversation id (unnamed, repeats allowed): GX reports failing rows by it.
    """
    import numpy as np
    import pyarrow.compute as pc

    frame = table.select(
        ["conversation_id", "started_at", "channel", "language", "intent", "text"]
    ).to_pandas()
    turns = table.column("turns").combine_chunks()
    speaker = pc.fill_null(pc.struct_field(turns.values, "speaker"), "")
    speakers = pa.ListArray.from_arrays(turns.offsets, speaker)
    frame["speakers"] = pc.binary_join(speakers, ",").to_numpy(zero_copy_only=False)
    texts = pc.fill_null(pc.struct_field(pc.list_flatten(turns), "text"), "")
    parents = pc.list_parent_indices(turns).to_numpy(zero_copy_only=False)
    longest = np.zeros(table.num_rows, np.int64)
    np.maximum.at(longest, parents, pc.utf8_length(texts).to_numpy(zero_copy_only=False))
    frame["longest_turn"] = longest
    fields = [
        table.column(name).combine_chunks() for name in _PII_FIELDS if name in table.schema.names
    ]
    frame["pii_left"] = _pii_left(texts, parents, fields, table.num_rows)
    frame.index = pd.Index(frame["conversation_id"].to_numpy(), dtype=object)
    return frame


# The row's free-text fields besides the turns that the gate looks into.
_PII_FIELDS = ("text", "conversation_id", "source")


def _pii_left(texts: pa.Array, parents: Any, fields: list[pa.Array], rows: int) -> list[str | None]:
    """Per row, the precise PII kinds the redactor's detectors still find (None: clean).

    `texts`: every turn's text, flattened; `parents`: the row of each; `fields`: one value a
    row each. ml.ingest.redact.pii_found screens at C speed and runs the redactor's own
    detectors on the few candidates: the gate and the redactor cannot disagree.
    """
    from ml.ingest.redact import pii_found

    found: dict[int, set[str]] = {}
    for i, kinds in pii_found(texts).items():
        found.setdefault(int(parents[i]), set()).update(kinds)
    for column in fields:
        for row, kinds in pii_found(column).items():
            found.setdefault(row, set()).update(kinds)
    out: list[str | None] = [None] * rows
    for row, kinds in found.items():
        out[row] = ",".join(sorted(kinds))
    return out


def import_in_background() -> threading.Thread:
    """Start importing Great Expectations (2-4 s of one core) on a thread, for a process that
    validates after a step of other work (:func:`ml.ingest.steps.ingest_day`): the import then
    overlaps that work instead of following it. Join the thread before validating; an import
    that fails here fails again, with its error, in :func:`run_suite`.
    """
    # What the main thread may still import meanwhile (normalise's pool, Arrow to pandas)
    # is imported first, so the two threads never wait on each other's module locks.
    import multiprocessing.popen_spawn_posix  # noqa: F401
    import multiprocessing.resource_tracker  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import pyarrow.pandas_compat  # noqa: F401

    def load() -> None:
        with contextlib.suppress(Exception):
            import great_expectations  # noqa: F401
            from great_expectations.core.run_identifier import RunIdentifier  # noqa: F401
            from great_expectations.data_context.types.base import DataContextConfig  # noqa: F401

    thread = threading.Thread(target=load, name="import-great-expectations", daemon=True)
    thread.start()
    return thread


def run_suite(
    rows: pa.Table | Iterable[pa.Table],
    day: date,
    known_intents: frozenset[str],
    report_dir: Path,
    min_rows: int = 1,
    run_name: str | None = None,
    row_count: int | None = None,
) -> ValidationOutcome:
    """Validate the day's rows; write the GX results (JSON), Data Docs, and a summary page.

    `rows`: a table, or the day in batches (memory stays bounded) with its `row_count`. The
    rows' suite runs on each batch (ids unique within it: the staged day holds each id once
    by construction, ml/ingest/staging.py); the day's suite on the row count.
    """
    if isinstance(rows, pa.Table):
        rows, row_count = [rows], rows.num_rows
    if row_count is None:
        raise ValueError("row_count is needed with batches")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context, docs_dir = _context(report_dir)
    source = context.data_sources.add_pandas("lake")

    def checkpoint(name: str, suite: Any) -> Any:
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("frame")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=context.suites.add(suite))
        )
        return context.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[],  # results are stored; Data Docs are built once, after every run
                result_format=RESULT_FORMAT,
            )
        )

    runs: list[str] = []  # the run names, in order: a Data Docs page each

    def run(check: Any, frame: pd.DataFrame, part: str) -> Any:
        runs.append(f"{run_name or day.isoformat()}{part}")
        [result] = check.run(
            batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=runs[-1])
        ).run_results.values()
        return result

    # The day: a frame of `row_count` rows and no columns (a RangeIndex holds no data).
    day_result = run(
        checkpoint(f"{SUITE_NAME}_day_{day.isoformat()}", build_day_suite(min_rows)),
        pd.DataFrame(index=pd.RangeIndex(row_count)),
        "",
    )
    rows_check = checkpoint(
        f"{SUITE_NAME}_{day.isoformat()}", build_suite(day, known_intents, allowed_languages())
    )
    batch_results = [
        run(rows_check, _frame(table), f"-rows-{i:04d}") for i, table in enumerate(rows)
    ]
    results = [day_result, *batch_results]
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "validation.json").write_text(
        json.dumps([r.to_json_dict() for r in results], indent=2, default=str)
    )
    checks = _combined(results)
    success = all(c["success"] for c in checks)
    context.build_data_docs(site_names=["intentflow"])
    # validations/<suite>/<run name>/<time>/<asset>.html: the day's page, then one a batch.
    by_run = {p.parent.parent.name: p for p in (docs_dir / "validations").glob("*/*/*/*.html")}
    pages = [by_run[name] for name in runs]
    failing = [i for i, r in enumerate(results) if not r.success]
    # The page a person opens first: the first failing one, else the first batch's.
    docs_page = str(pages[failing[0] if failing else min(1, len(pages) - 1)])
    html = report_dir / "validation.html"
    html.write_text(_html(day, success, checks, [str(p) for p in pages], len(batch_results)))
    failed = [
        FailedExpectation(
            expectation=c["expectation"],
            column=c["column"],
            rule=c["rule"],
            unexpected_count=c["unexpected_count"],
            ids=c["ids"],
        )
        for c in checks
        if not c["success"]
    ]
    return ValidationOutcome(success, failed, str(html), docs_page, len(checks))


def _context(report_dir: Path) -> tuple[Any, Path]:
    """An ephemeral GX context whose Data Docs site is `report_dir/data_docs`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Our own config: GX's default one adds a Data Docs site in a temporary folder. Usage
    # analytics off here, whatever GX_ANALYTICS_ENABLED says: a worker holding customer data
    # reports nothing to a third party.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
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
    return context, docs_dir


def _combined(results: list[Any]) -> list[dict[str, Any]]:
    """One line per expectation over all batches: counts summed, the first ids kept."""
    out: dict[tuple[str, str | None], dict[str, Any]] = {}
    for result in results:
        for r in result.results:
            config = r.expectation_config
            res = r.result or {}
            key = (config.type, config.kwargs.get("column"))
            line = out.setdefault(
                key,
                {
                    "expectation": config.type,
                    "column": config.kwargs.get("column"),
                    "rule": (config.meta or {}).get("rule", ""),
                    "success": True,
                    "unexpected_count": 0,
                    "ids": [],
                },
            )
            line["success"] &= bool(r.success)
            count = res.get("unexpected_count", res.get("observed_value"))
            if isinstance(count, int) and isinstance(line["unexpected_count"], int):
                line["unexpected_count"] += count
            else:
                line["unexpected_count"] = count
            if not r.success:
                more = [str(x) for x in (res.get("partial_unexpected_index_list") or [])]
                line["ids"] = (line["ids"] + more)[:MAX_IDS]
    return list(out.values())


def _html(
    day: date, success: bool, checks: list[dict[str, Any]], pages: list[str], batches: int
) -> str:
    from html import escape

    rows = "".join(
        f"<tr class={'ok' if c['success'] else 'fail'}><td>{'pass' if c['success'] else 'FAIL'}</td>"
        f"<td>{escape(c['expectation'])}</td><td>{escape(str(c['column'] or ''))}</td>"
        f"<td>{escape(str(c['unexpected_count']))}</td>"
        f"<td>{escape(', '.join(c['ids']))}</td></tr>"
        for c in checks
    )
    links = "".join(
        f"<li><a href='{escape(Path(p).as_uri())}'>{escape(Path(p).parent.parent.parent.name)}</a></li>"
        for p in pages
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>Validation {day}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd}"
        ".fail{background:#fdd}</style>"
        f"<h1>Transcripts {day}: {'passed' if success else 'FAILED'}</h1>"
        f"<p>Suite <code>{SUITE_NAME}</code> v{SUITE_VERSION}, Great Expectations, "
        f"rows in {batches} batch(es); counts are summed over them.</p>"
        "<table><tr><th>result</th><th>expectation</th><th>column</th><th>unexpected</th>"
        f"<th>conversation ids (first {MAX_IDS})</th></tr>{rows}</table>"
        f"<h2>Full Data Docs pages</h2><ul>{links}</ul>"
    )
