"""The phrase tables cover what the generator looks up in them, and name only slots it fills."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from ml.synthetic import phrases
from ml.synthetic.generate import PII_KINDS, _slots
from ml.taxonomy import INTENTS


def test_tables_keyed_by_intent_cover_the_taxonomy() -> None:
    for table in (
        phrases.OPENINGS,
        phrases.DETAILS,
        phrases.PII_FOR_INTENT,
        phrases.AGENT_INTENT_ACKS,
    ):
        assert set(table) == set(INTENTS)
    # Unclear requests exist only for intents with a family; the agent's check names each.
    assert set(phrases.FAMILIES) <= set(INTENTS)
    assert set(phrases.AGENT_CHECKS) == set(phrases.FAMILIES)
    assert set(phrases.FAMILY_OPENINGS) == set(phrases.FAMILIES.values())
    assert set(phrases.TEAMS) <= set(INTENTS)  # the rest go to billing
    assert set(phrases.PII_FOR_INTENT.values()) <= set(phrases.PII_DETAILS)
    assert set(phrases.PII_DETAILS) <= set(PII_KINDS)


def _customer_templates() -> Iterator[str]:
    for table in (phrases.OPENINGS, phrases.DETAILS, phrases.FAMILY_OPENINGS, phrases.PII_DETAILS):
        for templates in table.values():
            yield from templates
    yield from phrases.NAME_INTROS


def test_customer_templates_name_only_filled_slots() -> None:
    filled = set(_slots(random.Random(0), "en")) | set(PII_KINDS)
    named = {m for t in _customer_templates() for m in re.findall(r"\{(\w+)\}", t)}
    assert named <= filled, named - filled
