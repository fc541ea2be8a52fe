"""Personal identifiers outside the turns' text: ids, labels, and the subject keys of a row.

The turns are redacted (ml.ingest.redact); the other free-text fields need more than that:

- a conversation id is a key (dedupe, splits, joins), so one in which the detectors find PII
  (an e-mail or phone used as id) becomes a keyed pseudonym, stable across reruns;
- an intent label the taxonomy lacks is reported to the data owner (`new_intents`) only when
  it looks like a label and holds no PII; the others are counted under MASKED_LABEL;
- every e-mail and phone number removed from a row, and the personal values its source names,
  are kept as keyed hashes (`subject_keys`, ml.subjects) so erasure finds the row.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ml.ingest.redact import IDENTIFIER_KINDS, Found, detect, detect_array, known_in, pii_kinds
from ml.subjects import normal, pseudonym, subject_key

# Source-given personal values (`_pii` kinds) → the subject-key kind erasure looks them up by.
SUBJECT_KINDS = {
    "email": "email",
    "phone": "phone",
    "customer_id": "customer_id",
    "account_id": "customer_id",
    "username": "customer_id",
}
# What an intent label looks like: "refund_request", "CancelCheck", "faq:hours".
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
# `new_intents` key counting the unknown labels that are not shown (not label-like, or PII).
MASKED_LABEL = "[masked]"


def conversation_id(
    value: str, key: bytes, known: Mapping[str, list[str]] | None = None
) -> tuple[str, Found]:
    """The id as stored: a pseudonym when it holds PII (or a value the source marks personal),
    else itself; with the e-mails and phones found in it."""
    found = detect(value)
    if found or (known and known_in(value, known)):
        return pseudonym(value, key), [f for f in found if f[0] in IDENTIFIER_KINDS]
    return value, []


def conversation_ids(
    ids: Any, key: bytes, known: Sequence[Mapping[str, list[str]] | None] | None = None
) -> tuple[Any, dict[int, Found]]:
    """:func:`conversation_id` over a pyarrow string array of ids (`known`: each row's
    source-given values, or None): RE2 screens them, Python looks at the candidates only."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    personal = detect_array(ids)
    for i, values in enumerate(known or []):
        if values and i not in personal and known_in(ids[i].as_py(), values):
            personal[i] = []
    if not personal:
        return ids, {}
    at = sorted(personal)
    values = ids.take(pa.array(at, pa.int64())).to_pylist()
    mask = np.zeros(len(ids), bool)
    mask[at] = True
    stored = pa.array([pseudonym(v, key) for v in values], pa.string())
    found = {i: got for i in at if (got := [f for f in personal[i] if f[0] in IDENTIFIER_KINDS])}
    return pc.replace_with_mask(ids, pa.array(mask), stored), found


def subject_keys(
    found: Iterable[tuple[str, str]], known: Mapping[str, Any] | None, key: bytes
) -> list[str]:
    """Sorted distinct subject keys of a row: what the redactor removed, what the source names."""
    pairs = list(found)  # what a detector matched: never empty
    for name, values in (known or {}).items():
        if name in SUBJECT_KINDS:
            kind = SUBJECT_KINDS[name]
            parts = [values] if isinstance(values, str) else values
            pairs += [(kind, v) for v in parts if normal(kind, v)]  # not "", nor a digitless phone
    return sorted({_subject_key(kind, value, key) for kind, value in pairs})


# A day repeats a person's identifiers (turns, rows): each is hashed once per process.
_subject_key = functools.lru_cache(maxsize=1 << 16)(subject_key)


def shown_label(label: object) -> str:
    """An unknown intent as reported to the data owner: itself when it looks like a label and
    holds no PII, else MASKED_LABEL (an e-mail given as intent is never copied anywhere)."""
    if isinstance(label, str) and LABEL.fullmatch(label) and not pii_kinds(label):
        return label
    return MASKED_LABEL
