"""The promotion policy (pure) and promote() moving registry aliases on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ml.promotion import Decision, PromotionPolicy, decide, promote
from ml.registry import Registry

# db_url (SQLite and PostgreSQL) comes from tests/pg.py.
pytest_plugins = ("pg",)

POLICY = PromotionPolicy()


def metrics(macro_f1: float, f1s: dict[str, float], support: int = 15) -> dict[str, Any]:
    """A test-split metric dict: per-class f1 with equal support."""
    per_class = {label: {"f1": f1, "support": support} for label, f1 in f1s.items()}
    return {"accuracy": macro_f1, "macro_f1": macro_f1, "per_class": per_class}


CHAMPION = metrics(0.905, {"refund": 0.90, "lost_card": 0.91})


def test_no_champion_promotes() -> None:
    decision = decide(metrics(0.5, {"refund": 0.5, "lost_card": 0.5}), None, POLICY)
    assert decision == Decision(True, ["test set has 30 examples (>= 20)", "no champion yet"])


def test_better_challenger_promotes_with_readable_reasons() -> None:
    decision = decide(metrics(0.912, {"refund": 0.92, "lost_card": 0.904}), CHAMPION, POLICY)
    assert decision.promote
    assert "macro_f1 0.912 vs champion 0.905 (+0.007 >= +0.000)" in decision.reasons
    assert (
        "largest per-class f1 drop 0.006 on 'lost_card' (0.910 -> 0.904) <= 0.100 allowed"
        in decision.reasons
    )


def test_worse_challenger_is_held_back() -> None:
    decision = decide(metrics(0.895, {"refund": 0.9, "lost_card": 0.89}), CHAMPION, POLICY)
    assert not decision.promote
    assert "macro_f1 0.895 vs champion 0.905 (-0.010 < +0.000)" in decision.reasons


def test_min_improvement_is_absolute_and_float_safe() -> None:
    challenger = metrics(0.915, {"refund": 0.92, "lost_card": 0.91})
    assert decide(challenger, CHAMPION, PromotionPolicy(min_improvement=0.01)).promote
    assert not decide(challenger, CHAMPION, PromotionPolicy(min_improvement=0.011)).promote


def test_per_class_regression_blocks_promotion() -> None:
    # Better on average, but one class collapses.
    challenger = metrics(0.93, {"refund": 0.99, "lost_card": 0.75})
    decision = decide(challenger, CHAMPION, POLICY)
    assert not decision.promote
    assert (
        "largest per-class f1 drop 0.160 on 'lost_card' (0.910 -> 0.750) > 0.100 allowed"
        in decision.reasons
    )
    assert decide(challenger, CHAMPION, PromotionPolicy(max_class_regression=0.2)).promote


def test_class_missing_from_challenger_counts_as_zero() -> None:
    challenger = metrics(0.95, {"refund": 0.95})
    challenger["per_class"]["refund"]["support"] = 30
    assert not decide(challenger, CHAMPION, POLICY).promote


def test_too_small_test_set_blocks_even_without_champion() -> None:
    tiny = metrics(0.99, {"refund": 0.99, "lost_card": 0.99}, support=5)
    decision = decide(tiny, None, POLICY)
    assert not decision.promote
    assert decision.reasons[0] == "test set has 10 examples (< 20)"
    assert not decide(tiny, CHAMPION, POLICY).promote
    assert decide(tiny, None, PromotionPolicy(min_test_size=10)).promote


def test_missing_metric_blocks() -> None:
    challenger = metrics(0.99, {"refund": 0.99, "lost_card": 0.99})
    del challenger["macro_f1"]
    decision = decide(challenger, CHAMPION, POLICY)
    assert not decision.promote
    assert "challenger has no macro_f1 on the test split" in decision.reasons


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    with Registry(db_url) as reg:
        for _ in range(3):
            reg.register_version(
                "intent",
                artifact_uri="file:///a",
                artifact_sha256="0" * 64,
                base_model="minilm",
                data_snapshot_hash="s",
                params={},
                lineage={},
                metrics={"test": CHAMPION},
            )
        yield reg


def test_promote_moves_aliases(registry: Registry) -> None:
    first = promote(registry, "intent", 1, CHAMPION, None, POLICY, actor="dag")
    assert first.promote and registry.resolve("intent").version == 1

    worse = metrics(0.8, {"refund": 0.8, "lost_card": 0.8})
    held = promote(registry, "intent", 2, worse, CHAMPION, POLICY, actor="dag")
    assert not held.promote
    assert registry.resolve("intent").version == 1
    assert registry.resolve("intent@challenger").version == 2

    better = metrics(0.95, {"refund": 0.95, "lost_card": 0.95})
    assert promote(registry, "intent", 3, better, CHAMPION, POLICY, actor="dag").promote
    assert registry.resolve("intent@champion").version == 3

    moves = [r for r in registry.audit("intent") if r["alias"]]
    assert [(r["action"], r["alias"], r["version"]) for r in moves] == [
        ("promote", "champion", 1),
        ("set_alias", "challenger", 2),
        ("promote", "champion", 3),
    ]
    assert moves[1]["reason"] == "; ".join(held.reasons)
    assert moves[2]["details"]["from_version"] == 1
    assert moves[2]["details"]["policy"]["metric"] == "macro_f1"
