"""What ingest's steps hand each other: discover → normalise → validate → publish.

The DAG passes these between its tasks through XCom, so each is a JSON-serialisable dict (a
TypedDict: the keys below, nothing else, no data). Only standard-library typing here: the DAG
file imports this module at parse time for its tasks' signatures.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Discovered(TypedDict):
    """The DAG's `discover` task: the day, the source read and its files for that day."""

    day: str  # YYYY-MM-DD
    source: str  # the configured source's name (ml.ingest.named_sources)
    files: list[str]


class Staged(TypedDict):
    """`normalise`: the day parsed, redacted and staged (ml.ingest.staged_day), with its counts."""

    day: str  # YYYY-MM-DD
    # A local folder, or a prefix on object storage when the data root is there.
    staging_dir: str
    source: str  # the source's display name (no credentials)
    labels_file: str | None  # the source's own label set; None: ml.taxonomy's
    files: list[str]
    rows_read: int
    rows_written: int
    rows_quarantined: int
    content_hash: str  # of the staged rows: the same rows, the same hash
    quarantine_rules: dict[str, int]  # rule -> records quarantined by it
    # Labels the taxonomy lacks -> records (quarantined; flagged for the data owner).
    new_intents: dict[str, int]


class FailedExpectation(TypedDict):
    """One data-quality rule the day broke (ml.ingest.validation), as alerts report it."""

    expectation: str  # the GX expectation type, or one of ingest's own gates
    column: str | None
    rule: str  # in words
    unexpected_count: int
    # A few offending rows' conversation ids: never their values, which may be customer text.
    ids: list[str]


class Validated(Staged):
    """`validate`: the staged day once it passed its gate, with where its report is."""

    validation_report: str  # the summary page (local path or URL)
    data_docs: str  # the GX Data Docs page
    min_rows: int  # the volume check's floor from the trailing days
    failed_expectations: list[FailedExpectation]  # empty: a day that failed raises instead


class Published(TypedDict):
    """`publish`: the partition's manifest (as the lake holds it) and where the day went."""

    day: str
    files: list[str]
    rows_read: int
    rows_written: int
    rows_quarantined: int
    rows: int  # the partition's rows (= rows_written)
    quarantine_rules: dict[str, int]
    source: str
    validation_report: str
    data_docs: str
    new_intents: dict[str, int]
    content_hash: str
    # On object storage: the partition's data version and the one it replaced (ml.lake).
    version: NotRequired[str]
    previous_version: NotRequired[str | None]
    partition: str  # the partition folder (local path or URL)
    quarantine_file: str
