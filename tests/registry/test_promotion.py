"""The promotion policy (pure) and promote() moving registry aliases on both backends."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.artifact.integrity import directory_sha256
from ml.config import ConfigError, settings
from ml.registry.errors import RegistryError
from ml.registry.promotion import (
    Decision,
    PromotionPolicy,
    decide,
    promote,
    promote_manually,
    rollback,
)
from ml.registry.store import Registry
from ml.registry.views import CLASS_METRIC

# db_url (SQLite and PostgreSQL) comes from tests/pg.py.
pytest_plugins = ("pg",)

POLICY = PromotionPolicy()


def metrics(macro_f1: float, f1s: dict[str, float], support: int = 25) -> dict[str, Any]:
    """A test-split metric dict: per-class f1 with equal support (by default enough for each
    class to count in the per-class check)."""
    per_class = {label: {"f1": f1, "support": support} for label, f1 in f1s.items()}
    return {"accuracy": macro_f1, "macro_f1": macro_f1, "per_class": per_class}


CHAMPION = metrics(0.905, {"refund": 0.90, "lost_card": 0.91})


def test_no_champion_promotes() -> None:
    decision = decide(metrics(0.5, {"refund": 0.5, "lost_card": 0.5}), None, POLICY)
    assert decision == Decision(True, ["test set has 50 examples (>= 20)", "no champion yet"])


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


def test_a_rare_class_does_not_block_and_is_listed_as_not_judged() -> None:
    """A class with 3 test examples goes from 1.0 to 0.0 F1 on one or two flipped examples:
    noise, not a regression; it is reported as skipped, with its support."""
    champion = metrics(0.80, {"refund": 0.80, "lost_card": 0.80}, support=50)
    champion["per_class"]["close_account"] = {"f1": 1.0, "support": 3}
    challenger = metrics(0.85, {"refund": 0.85, "lost_card": 0.85}, support=50)
    challenger["per_class"]["close_account"] = {"f1": 0.0, "support": 3}
    decision = decide(challenger, champion, POLICY)
    assert decision.promote
    assert decision.skipped_classes == {"close_account": 3}
    assert decision.reasons[2] == (
        "largest per-class f1 drop 0.000 on 'refund' (0.800 -> 0.850) <= 0.100 allowed; "
        "1 class(es) with test support < 20 not judged: 'close_account' (3)"
    )
    # With the minimum lowered to its support, the class is judged again and blocks.
    strict = decide(challenger, champion, PromotionPolicy(min_class_support=3))
    assert not strict.promote and strict.skipped_classes == {}
    assert "drop 1.000 on 'close_account'" in strict.reasons[2]


def test_a_well_supported_class_dropping_beyond_the_limit_still_blocks() -> None:
    champion = metrics(0.80, {"refund": 0.80, "lost_card": 0.90}, support=50)
    champion["per_class"]["close_account"] = {"f1": 1.0, "support": 4}
    challenger = metrics(0.85, {"refund": 0.95, "lost_card": 0.75}, support=50)
    challenger["per_class"]["close_account"] = {"f1": 0.5, "support": 4}
    decision = decide(challenger, champion, POLICY)
    assert not decision.promote
    assert decision.reasons[2].startswith(
        "largest per-class f1 drop 0.150 on 'lost_card' (0.900 -> 0.750) > 0.100 allowed"
    )
    assert decision.skipped_classes == {"close_account": 4}


def test_when_every_class_is_rare_the_per_class_check_says_so() -> None:
    champion = metrics(0.9, {"refund": 1.0, "lost_card": 0.8}, support=6)
    challenger = metrics(0.95, {"refund": 0.5, "lost_card": 1.0}, support=6)
    decision = decide(challenger, champion, PromotionPolicy(min_test_size=10))
    assert decision.promote
    assert decision.skipped_classes == {"lost_card": 6, "refund": 6}
    assert decision.reasons[2] == (
        "per-class check skipped: no class has enough test support; 2 class(es) with test "
        "support < 20 not judged: 'lost_card' (6), 'refund' (6)"
    )


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


def _answers_metrics(gold_first: dict[str, bool]) -> dict[str, Any]:
    """Real answers test metrics (ml.tasks.answers.metrics.ranking_metrics): 30 `track` and 20
    `refund` questions against a bank of three answers; per intent, the gold answer ranks
    first, or second behind answer 2."""
    from ml.tasks.answers.metrics import ranking_metrics

    rows, gold, intents = [], [], []
    for intent, answer, n in (("track", 0, 30), ("refund", 1, 20)):
        for _ in range(n):
            row = [0.1, 0.1, 0.1]
            row[answer] = 0.9
            row[2] = 0.5 if gold_first[intent] else 0.95
            rows.append(row)
            gold.append(answer)
            intents.append(intent)
    bank_intents = [["track"], ["refund"], ["other"]]
    return ranking_metrics(np.array(rows), gold, intents, bank_intents)


def test_answers_per_class_check_compares_mrr_by_intent() -> None:
    """Answers' per-class metrics are MRR and recall_at_1 by intent, no F1: the check compares
    the task's per-class metric (ml.registry.views.CLASS_METRIC), so it is never skipped."""
    champion = _answers_metrics({"track": False, "refund": True})
    challenger = _answers_metrics({"track": True, "refund": False})
    assert set(challenger["per_class"]["refund"]) == {"mrr", "recall_at_1", "support"}
    policy = PromotionPolicy(metric="mrr", class_metric=CLASS_METRIC["answers"])
    decision = decide(challenger, champion, policy)
    # Better overall (0.8 vs 0.7), but refund questions lost their first-ranked answers.
    assert not decision.promote
    assert decision.reasons == [
        "test set has 50 examples (>= 20)",
        "mrr 0.800 vs champion 0.700 (+0.100 >= +0.000)",
        "largest per-class mrr drop 0.500 on 'refund' (1.000 -> 0.500) > 0.100 allowed",
    ]
    # With the intent model's per-class metric, the same metrics have nothing to compare.
    f1 = decide(challenger, champion, PromotionPolicy(metric="mrr"))
    assert f1.promote and f1.reasons[2] == "per-class check skipped: champion has no per-class f1"


def test_a_task_without_classes_is_sized_by_its_example_count() -> None:
    """Answer metrics without intents have no per-class metrics: `n` counts its test examples."""
    from ml.tasks.answers.metrics import ranking_metrics

    scores = np.array([[0.9, 0.1]] * 30 + [[0.1, 0.9]] * 10)
    champion = ranking_metrics(scores, [0] * 40)
    challenger = ranking_metrics(scores, [0] * 30 + [1] * 10)
    assert "per_class" not in challenger
    policy = PromotionPolicy(metric="mrr", class_metric=CLASS_METRIC["answers"])
    decision = decide(challenger, champion, policy)
    assert decision.promote
    assert decision.reasons == [
        "test set has 40 examples (>= 20)",
        "mrr 1.000 vs champion 0.875 (+0.125 >= +0.000)",
        "per-class check skipped: no per-class metrics to compare",
    ]
    assert not decide(ranking_metrics(scores[:12], [0] * 12), None, policy).promote


def test_missing_metric_blocks() -> None:
    challenger = metrics(0.99, {"refund": 0.99, "lost_card": 0.99})
    del challenger["macro_f1"]
    decision = decide(challenger, CHAMPION, POLICY)
    assert not decision.promote
    assert "challenger has no macro_f1 on the test split" in decision.reasons


@contextmanager
def _three_versions(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """Three versions of `intent`, each with a real (small) artifact directory."""
    with Registry(db_url, auto_upgrade=True) as reg:
        for n in range(1, 4):
            artifact = tmp_path / f"artifact-{n}"
            artifact.mkdir()
            (artifact / "model.safetensors").write_bytes(b"weights %d" % n)
            reg.register_version(
                "intent",
                artifact_uri=str(artifact),
                artifact_sha256=directory_sha256(artifact),
                base_model="minilm",
                data_snapshot_hash="s",
                params={},
                lineage={},
                metrics={"test": CHAMPION},
            )
        yield reg


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    with _three_versions(db_url, tmp_path) as reg:
        yield reg


def test_promote_moves_aliases(registry: Registry) -> None:
    first = promote(
        registry, "intent", 1, CHAMPION, None, POLICY, actor="dag", evaluated_champion=None
    )
    assert first.promote and registry.resolve("intent").version == 1

    worse = metrics(0.8, {"refund": 0.8, "lost_card": 0.8})
    held = promote(
        registry, "intent", 2, worse, CHAMPION, POLICY, actor="dag", evaluated_champion=1
    )
    assert not held.promote
    assert registry.resolve("intent").version == 1
    assert registry.resolve("intent@challenger").version == 2

    better = metrics(0.95, {"refund": 0.95, "lost_card": 0.95})
    assert promote(
        registry, "intent", 3, better, CHAMPION, POLICY, actor="dag", evaluated_champion=1
    ).promote
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
    assert moves[2]["details"]["policy"]["min_class_support"] == 20
    assert moves[2]["details"]["skipped_classes"] == {}


def test_promote_records_the_classes_it_did_not_judge(registry: Registry) -> None:
    promote(registry, "intent", 1, CHAMPION, None, POLICY, actor="dag", evaluated_champion=None)
    champion = {**CHAMPION, "per_class": {**CHAMPION["per_class"]}}
    champion["per_class"]["close_account"] = {"f1": 1.0, "support": 3}
    better = metrics(0.95, {"refund": 0.95, "lost_card": 0.95})
    better["per_class"]["close_account"] = {"f1": 0.0, "support": 3}
    assert promote(
        registry, "intent", 2, better, champion, POLICY, actor="dag", evaluated_champion=1
    ).promote
    move = [r for r in registry.audit("intent") if r["alias"]][-1]
    assert (move["action"], move["version"]) == ("promote", 2)
    assert move["details"]["skipped_classes"] == {"close_account": 3}
    assert "'close_account' (3)" in move["reason"]


# --- compare-and-swap: the champion evaluated against is the one replaced ---------------------


def test_a_rollback_after_evaluation_is_not_overwritten_by_the_dags_promote(
    registry: Registry,
) -> None:
    """The DAG evaluated v3 against champion v2; an operator rolled back to v1 before the
    promote task ran: v1 stays, v3 becomes challenger, and the audit says why."""
    registry.set_alias("intent", "champion", 2, actor="dag", reason="earlier run")
    rollback(registry, "intent", actor="ops", reason="v2 misroutes refunds", version=1)
    better = metrics(0.95, {"refund": 0.95, "lost_card": 0.95})
    decision = promote(
        registry, "intent", 3, better, CHAMPION, POLICY, actor="dag", evaluated_champion=2
    )
    assert not decision.promote and decision.champion_changed
    assert decision.reasons[0] == (
        "skipped: champion changed since evaluation (evaluated against v2, now v1)"
    )
    assert registry.resolve("intent").version == 1
    assert registry.resolve("intent@challenger").version == 3
    last = registry.audit("intent")[-1]
    assert (last["action"], last["alias"], last["version"]) == ("promote_skipped", "challenger", 3)
    assert last["reason"].startswith("skipped: champion changed since evaluation")
    assert (last["details"]["evaluated_champion"], last["details"]["current_champion"]) == (2, 1)


def test_a_first_champion_named_while_the_dag_ran_is_kept(registry: Registry) -> None:
    """Evaluated with no champion; someone named one since: that one stays."""
    promote_manually(registry, "intent:1", actor="alice", reason="first release")
    decision = promote(
        registry, "intent", 2, CHAMPION, None, POLICY, actor="dag", evaluated_champion=None
    )
    assert decision.champion_changed and not decision.promote
    assert "(evaluated against no champion, now v1)" in decision.reasons[0]
    assert registry.resolve("intent").version == 1


def test_the_alias_moves_only_from_the_expected_version(registry: Registry) -> None:
    from ml.registry.errors import AliasChangedError

    registry.set_alias("intent", "champion", 1, actor="a", reason="r", expected=None)
    with pytest.raises(AliasChangedError, match="intent@champion is v1, not v2") as err:
        registry.set_alias("intent", "champion", 3, actor="a", reason="r", expected=2)
    assert (err.value.expected, err.value.current) == (2, 1)
    registry.set_alias("intent", "champion", 3, actor="a", reason="r", expected=1)
    assert registry.resolve("intent").version == 3


def _at_once(*jobs: Callable[[], object]) -> list[str]:
    """Run each job in its own thread, all released together; the errors they raised."""
    barrier, errors = threading.Barrier(len(jobs)), []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except Exception as exc:  # noqa: BLE001 - handed to the caller's assertion
            barrier.abort()
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_promote_and_rollback_never_lose_the_rollback(
    db_url: str, tmp_path: Path
) -> None:
    """The DAG's promote (it evaluated v3 against v2) and an operator's rollback to v1 at the
    same moment, each on its own connection, several rounds: whichever commits first, v1 is the
    champion at the end and the audit shows both decisions."""
    better = metrics(0.95, {"refund": 0.95, "lost_card": 0.95})
    with (
        _three_versions(db_url, tmp_path) as setup,
        Registry(db_url) as dag,
        Registry(db_url) as ops,
    ):
        for _ in range(4):
            setup.set_alias("intent", "champion", 2, actor="dag", reason="an earlier run")
            errors = _at_once(
                lambda: promote(
                    dag, "intent", 3, better, CHAMPION, POLICY, actor="dag", evaluated_champion=2
                ),
                lambda: rollback(ops, "intent", actor="ops", reason="v2 misroutes", version=1),
            )
            assert errors == []
            assert setup.resolve("intent").version == 1
            last_two = [(r["action"], r["version"]) for r in setup.audit("intent")[-2:]]
            assert last_two in (
                [("promote", 3), ("rollback", 1)],  # the DAG first: the rollback undoes it
                [("rollback", 1), ("promote_skipped", 3)],  # the operator first: v3 waits
            )


# --- out-of-scope recall -----------------------------------------------------------------------


def with_oos(base: dict[str, Any], recall: float | None, n: int = 40) -> dict[str, Any]:
    """`base` with intent's out-of-scope figures: `n` out-of-scope test examples, `recall`."""
    figures: dict[str, Any] = {"oos_n": n, "in_scope_accuracy": 0.9}
    if recall is not None:
        figures |= {"oos_recall": recall, "oos_precision": 0.8}
    return {**base, **figures}


BETTER = metrics(0.912, {"refund": 0.92, "lost_card": 0.904})


def test_a_drop_of_oos_recall_blocks_promotion() -> None:
    decision = decide(with_oos(BETTER, 0.70), with_oos(CHAMPION, 0.75), POLICY)
    assert not decision.promote
    assert (
        "OOS recall 0.700 vs champion 0.750 on 40 out-of-scope examples "
        "(drop 0.050 > 0.000 allowed)" in decision.reasons
    )
    kept = decide(with_oos(BETTER, 0.75), with_oos(CHAMPION, 0.75), POLICY)
    assert kept.promote
    loose = PromotionPolicy(max_oos_recall_regression=0.05)
    assert decide(with_oos(BETTER, 0.70), with_oos(CHAMPION, 0.75), loose).promote


def test_the_oos_recall_check_is_off_without_out_of_scope_examples_or_when_configured() -> None:
    none = decide(with_oos(BETTER, None, n=0), with_oos(CHAMPION, 0.9), POLICY)
    assert none.promote
    assert "OOS recall check skipped: no out-of-scope examples in the test split" in none.reasons
    old = decide(with_oos(BETTER, 0.5), CHAMPION, POLICY)  # a champion from before the feature
    assert old.promote and any("the champion has no OOS recall" in r for r in old.reasons)
    few = decide(with_oos(BETTER, 0.0, n=5), with_oos(CHAMPION, 1.0, n=5), POLICY)
    assert few.promote and "5 out-of-scope test examples (< 20)" in " ".join(few.reasons)
    off = PromotionPolicy(max_oos_recall_regression=None)
    decision = decide(with_oos(BETTER, 0.1), with_oos(CHAMPION, 0.9), off)
    assert decision.promote and not any("OOS" in r for r in decision.reasons)


def test_the_oos_recall_limit_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PromotionPolicy.from_settings(settings()).max_oos_recall_regression == 0.0
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION", "0.02")
    assert PromotionPolicy.from_settings(settings()).max_oos_recall_regression == 0.02
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION", "off")
    assert PromotionPolicy.from_settings(settings()).max_oos_recall_regression is None
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MAX_OOS_RECALL_REGRESSION", "-1")
    with pytest.raises(ConfigError, match="MAX_OOS_RECALL_REGRESSION='-1' must be a number >= 0"):
        settings()
    with pytest.raises(ValueError, match="max_oos_recall_regression must be a number >= 0"):
        PromotionPolicy(max_oos_recall_regression=-0.1)


# --- configuration --------------------------------------------------------------------------


def test_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PromotionPolicy.from_settings(settings()) == PromotionPolicy()
    monkeypatch.setenv("INTENTFLOW_PROMOTION_METRIC", "accuracy")
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_IMPROVEMENT", "0.02")
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MAX_CLASS_REGRESSION", "0.05")
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "500")
    assert PromotionPolicy.from_settings(settings()) == PromotionPolicy("accuracy", 0.02, 0.05, 500)
    monkeypatch.setenv("INTENTFLOW_PROMOTION_MIN_CLASS_SUPPORT", "5")
    assert PromotionPolicy.from_settings(settings()).min_class_support == 5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INTENTFLOW_PROMOTION_MIN_IMPROVEMENT", "a lot", "is not a number"),
        ("INTENTFLOW_PROMOTION_MAX_CLASS_REGRESSION", "-0.1", "must be a number >= 0"),
        ("INTENTFLOW_PROMOTION_MIN_TEST_SIZE", "20.5", "is not an integer"),
        ("INTENTFLOW_PROMOTION_MIN_CLASS_SUPPORT", "-1", "must be a number >= 0"),
    ],
)
def test_bad_policy_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(f"{name}={value!r}") + ".*" + message):
        settings()


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="must name a test metric"):
        PromotionPolicy(metric="")
    with pytest.raises(ValueError, match="min_test_size must be a number >= 0"):
        PromotionPolicy(min_test_size=-1)
    with pytest.raises(ValueError, match="min_class_support must be a number >= 0"):
        PromotionPolicy(min_class_support=-1)


# --- manual promotion and rollback ----------------------------------------------------------


def test_manual_promote_and_rollback_are_audited(registry: Registry) -> None:
    promote_manually(registry, "intent:1", actor="alice", reason="first release")
    v = promote_manually(registry, "intent:3", actor="bob", reason="hotfix model")
    assert v.aliases == ("champion",)
    back = rollback(registry, "intent", actor="carol", reason="hotfix misroutes refunds")
    assert back.version == 1 and registry.resolve("intent").version == 1
    moves = [(r["action"], r["version"], r["actor"], r["reason"]) for r in registry.audit("intent")]
    assert moves[-3:] == [
        ("promote", 1, "alice", "first release"),
        ("promote", 3, "bob", "hotfix model"),
        ("rollback", 1, "carol", "hotfix misroutes refunds"),
    ]
    with pytest.raises(RegistryError, match="needs a reason"):
        promote_manually(registry, "intent:2", actor="dave", reason="  ")
    with pytest.raises(RegistryError, match="model 'intent' has no version 9"):
        promote_manually(registry, "intent:9", actor="dave", reason="typo")


def test_a_version_whose_artifact_is_missing_or_altered_cannot_be_promoted(
    registry: Registry,
) -> None:
    promote(registry, "intent", 1, CHAMPION, None, POLICY, actor="dag", evaluated_champion=None)
    artifact = Path(registry.get("intent", version=2).artifact_uri)
    (artifact / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match=r"cannot point an alias at intent:2: .*sha256"):
        promote_manually(registry, "intent:2", actor="eve", reason="try")
    shutil.rmtree(artifact)
    with pytest.raises(RegistryError, match=r"intent:2: artifact .* is missing"):
        promote_manually(registry, "intent:2", actor="eve", reason="try")
    better = metrics(0.99, {"refund": 0.99, "lost_card": 0.99})
    with pytest.raises(RegistryError, match="is missing"):
        promote(registry, "intent", 2, better, CHAMPION, POLICY, actor="dag", evaluated_champion=1)
    with pytest.raises(RegistryError, match="is missing"):
        rollback(registry, "intent", actor="ops", reason="r", version=2)
    assert registry.resolve("intent").version == 1  # nothing moved
