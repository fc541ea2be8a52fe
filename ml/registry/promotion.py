"""Whether a freshly trained challenger replaces the champion, and applying that choice.

`decide` is pure: it compares test-split metric dicts (see ml.registry.store.VersionInfo.metrics) and
explains itself in `reasons`, which end up in the registry's audit trail. The champion's metrics
must come from evaluating the champion on the challenger's test split, not from its own
registration, or the comparison is between different test sets.

`promote` applies the policy (the retrain DAG's `promote` task) as a compare-and-swap: the
champion moves only if it is still the version the challenger was evaluated against, so an
operator's rollback while the DAG ran is never overwritten. `promote_manually` and `rollback`
are an operator's decisions (the CLI's and the registry page's), recorded with actor and reason.
All three refuse a version whose artifact is missing or does not match its sha256: the alias
would point at a model nobody can load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ml.artifact.integrity import ArtifactIntegrityError, check_artifact
from ml.config import (
    DEFAULT_MAX_CLASS_REGRESSION,
    DEFAULT_MAX_OOS_RECALL_REGRESSION,
    DEFAULT_MIN_CLASS_SUPPORT,
    DEFAULT_MIN_IMPROVEMENT,
    DEFAULT_MIN_TEST_SIZE,
    DEFAULT_PROMOTION_METRIC,
    Settings,
)
from ml.registry.errors import AliasChangedError, RegistryError
from ml.registry.metrics import PER_CLASS
from ml.registry.store import CHALLENGER, CHAMPION, Registry, VersionInfo

# Float slack so that e.g. 0.915 - 0.905 still counts as an improvement of 0.010.
_EPS = 1e-9


@dataclass(frozen=True)
class PromotionPolicy:
    metric: str = DEFAULT_PROMOTION_METRIC  # compared on the test split
    min_improvement: float = DEFAULT_MIN_IMPROVEMENT  # absolute gain over the champion
    max_class_regression: float = DEFAULT_MAX_CLASS_REGRESSION  # largest per-class drop
    min_test_size: int = DEFAULT_MIN_TEST_SIZE  # smallest test set (summed support) to trust
    # Fewest test examples of a class for its drop to count in the per-class check.
    min_class_support: int = DEFAULT_MIN_CLASS_SUPPORT
    # The per-class metric compared (higher is better): the task's, ml.registry.views.CLASS_METRIC
    # (F1 for intent and entities, MRR by intent for answers).
    class_metric: str = "f1"
    # Largest drop of test out-of-scope recall allowed (intent); None: not checked. The check
    # is skipped where the test split has no out-of-scope examples.
    max_oos_recall_regression: float | None = DEFAULT_MAX_OOS_RECALL_REGRESSION

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric or self.metric == PER_CLASS:
            raise ValueError(f"promotion metric must name a test metric, got {self.metric!r}")
        if not isinstance(self.class_metric, str) or not self.class_metric:
            raise ValueError(f"per-class metric must be named, got {self.class_metric!r}")
        for name in (
            "min_improvement",
            "max_class_regression",
            "min_test_size",
            "min_class_support",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"promotion policy {name} must be a number >= 0, got {value!r}")
        limit = self.max_oos_recall_regression
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 0
        ):
            raise ValueError(
                f"promotion policy max_oos_recall_regression must be a number >= 0 or None "
                f"(off), got {limit!r}"
            )

    @classmethod
    def from_settings(cls, cfg: Settings) -> PromotionPolicy:
        """The policy configured by INTENTFLOW_PROMOTION_* (see ml.config)."""
        return cls(
            metric=cfg.promotion_metric,
            min_improvement=cfg.promotion_min_improvement,
            max_class_regression=cfg.promotion_max_class_regression,
            min_test_size=cfg.promotion_min_test_size,
            min_class_support=cfg.promotion_min_class_support,
            max_oos_recall_regression=cfg.promotion_max_oos_recall_regression,
        )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]  # human-readable, one per check, failed or passed
    # Classes left out of the per-class regression check for test support below the policy's
    # min_class_support: label -> support. Not judged, so a person should know.
    skipped_classes: dict[str, int] = field(default_factory=dict)
    # The policy said promote, but the champion had moved since the evaluation: not promoted.
    champion_changed: bool = False


def support_total(metrics: dict) -> int:
    """Examples behind the metrics: the per-class supports summed; for a task without
    classes (answer retrieval), its example count `n` (0 when neither is there)."""
    per_class = metrics.get(PER_CLASS)
    if per_class:
        return int(sum(per.get("support", 0) for per in per_class.values()))
    return int(metrics.get("n", 0))


def _check_size(challenger: dict, policy: PromotionPolicy) -> tuple[bool, str]:
    n = support_total(challenger)
    ok = n >= policy.min_test_size
    return ok, f"test set has {n} examples ({'>=' if ok else '<'} {policy.min_test_size})"


def _check_metric(challenger: dict, champion: dict, policy: PromotionPolicy) -> tuple[bool, str]:
    name = policy.metric
    if name not in challenger:
        return False, f"challenger has no {name} on the test split"
    if name not in champion:
        return False, f"champion has no {name} on the test split; cannot compare"
    new, old = float(challenger[name]), float(champion[name])
    delta = new - old
    ok = delta >= policy.min_improvement - _EPS
    return ok, (
        f"{name} {new:.3f} vs champion {old:.3f} "
        f"({delta:+.3f} {'>=' if ok else '<'} {policy.min_improvement:+.3f})"
    )


def _check_classes(
    challenger: dict, champion: dict, policy: PromotionPolicy
) -> tuple[bool, str, dict[str, int]]:
    """The largest drop of the per-class metric (`policy.class_metric`), over the classes with
    test support of at least `policy.min_class_support`; also the classes skipped for lower
    support, with their supports.
    """
    name = policy.class_metric
    old = champion.get(PER_CLASS) or {}
    new = challenger.get(PER_CLASS) or {}
    if not old or not new:
        return True, "per-class check skipped: no per-class metrics to compare", {}
    drops: list[tuple[float, str, float, float]] = []
    skipped: dict[str, int] = {}
    for label, per in old.items():
        support = per.get("support", new.get(label, {}).get("support"))
        if support == 0 or name not in per:
            continue  # a class absent from the test split says nothing
        if support is not None and support < policy.min_class_support:
            skipped[label] = int(support)  # a single example flips its score by too much
            continue
        # Same test split, so a class the challenger does not report scored nothing.
        after = float(new.get(label, {}).get(name, 0.0))
        drops.append((float(per[name]) - after, label, float(per[name]), after))
    skipped = dict(sorted(skipped.items()))
    note = (
        f"; {len(skipped)} class(es) with test support < {policy.min_class_support} not judged: "
        + ", ".join(f"{label!r} ({n})" for label, n in skipped.items())
        if skipped
        else ""
    )
    if not drops:
        if skipped:
            return True, "per-class check skipped: no class has enough test support" + note, skipped
        return True, f"per-class check skipped: champion has no per-class {name}", skipped
    drop, label, before, after = max(drops)
    ok = drop <= policy.max_class_regression + _EPS
    return (
        ok,
        f"largest per-class {name} drop {max(drop, 0.0):.3f} on {label!r} ({before:.3f} -> "
        f"{after:.3f}) {'<=' if ok else '>'} {policy.max_class_regression:.3f} allowed" + note,
        skipped,
    )


def _check_oos_recall(
    challenger: dict, champion: dict, policy: PromotionPolicy
) -> tuple[bool, str] | None:
    """Out-of-scope recall (ml.tasks.intent.out_of_scope) must not drop by more than the
    policy allows; judged only on a test split with enough out-of-scope examples (the
    per-class check's min_class_support) and a champion that measured it. None: off, or a
    challenger without out-of-scope figures (a task type without a detector)."""
    allowed = policy.max_oos_recall_regression
    if allowed is None or "oos_n" not in challenger:  # off, or no detector (other tasks)
        return None
    n = int(challenger["oos_n"])
    if n == 0 or "oos_recall" not in challenger:
        return True, "OOS recall check skipped: no out-of-scope examples in the test split"
    if "oos_recall" not in champion:
        return True, (
            "OOS recall check skipped: the champion has no OOS recall (trained before "
            "out-of-scope detection)"
        )
    if n < policy.min_class_support:
        return True, (
            f"OOS recall check skipped: {n} out-of-scope test examples "
            f"(< {policy.min_class_support})"
        )
    new, old = float(challenger["oos_recall"]), float(champion["oos_recall"])
    drop = old - new
    ok = drop <= allowed + _EPS
    return ok, (
        f"OOS recall {new:.3f} vs champion {old:.3f} on {n} out-of-scope examples (drop "
        f"{max(drop, 0.0):.3f} {'<=' if ok else '>'} {allowed:.3f} allowed)"
    )


def decide(challenger: dict, champion: dict | None, policy: PromotionPolicy) -> Decision:
    """Promote only if every check passes; every check reports, so the audit shows all."""
    checks = [_check_size(challenger, policy)]
    skipped: dict[str, int] = {}
    if champion is None:
        checks.append((True, "no champion yet"))
    else:
        checks.append(_check_metric(challenger, champion, policy))
        ok, why, skipped = _check_classes(challenger, champion, policy)
        checks.append((ok, why))
        oos = _check_oos_recall(challenger, champion, policy)
        if oos is not None:
            checks.append(oos)
    return Decision(
        promote=all(ok for ok, _ in checks),
        reasons=[why for _, why in checks],
        skipped_classes=skipped,
    )


def promote(
    registry: Registry,
    model: str,
    version: int,
    challenger_metrics: dict,
    champion_metrics: dict | None,
    policy: PromotionPolicy,
    actor: str,
    *,
    evaluated_champion: int | None,
) -> Decision:
    """Decide, then move `champion` to the version, or else mark it the `challenger`.

    `evaluated_champion` is the champion version `champion_metrics` belong to (None: there was
    no champion). The champion moves only if it is still that version (compare-and-swap);
    otherwise the version becomes `challenger` and the decision, audited as
    "promote_skipped", says "skipped: champion changed since evaluation".
    """
    _require_artifact(registry.get(model, version=version))
    decision = decide(challenger_metrics, champion_metrics, policy)
    details: dict[str, Any] = {
        "reasons": decision.reasons,
        "policy": asdict(policy),
        # label -> test support of the classes the per-class check did not judge
        "skipped_classes": decision.skipped_classes,
        "evaluated_champion": evaluated_champion,
    }
    if decision.promote:
        try:
            registry.set_alias(
                model,
                CHAMPION,
                version,
                actor=actor,
                reason="; ".join(decision.reasons),
                action="promote",
                details=details,
                expected=evaluated_champion,
            )
            return decision
        except AliasChangedError as moved:
            skipped = (
                f"skipped: champion changed since evaluation (evaluated against "
                f"{_shown(evaluated_champion)}, now {_shown(moved.current)})"
            )
            decision = replace(
                decision, promote=False, reasons=[skipped, *decision.reasons], champion_changed=True
            )
            details = {**details, "reasons": decision.reasons, "current_champion": moved.current}
    registry.set_alias(
        model,
        CHALLENGER,
        version,
        actor=actor,
        reason="; ".join(decision.reasons),
        action="promote_skipped" if decision.champion_changed else "set_alias",
        details=details,
    )
    return decision


def _shown(version: int | None) -> str:
    return "no champion" if version is None else f"v{version}"


def _require_artifact(info: VersionInfo) -> None:
    try:
        check_artifact(info.artifact_uri, info.artifact_sha256)
    except (ArtifactIntegrityError, OSError) as exc:
        raise RegistryError(f"cannot point an alias at {info.model}:{info.version}: {exc}") from exc


def promote_manually(
    registry: Registry,
    ref: str,
    *,
    actor: str,
    reason: str,
    alias: str = CHAMPION,
    details: dict | None = None,
) -> VersionInfo:
    """An operator moves `alias` (default champion) to the version `ref` names, policy aside.
    `details` (e.g. which client) is stored with the audit entry."""
    if not reason or not reason.strip():
        raise RegistryError("a manual promotion needs a reason")
    info = registry.resolve(ref)
    _require_artifact(info)
    registry.set_alias(
        info.model,
        alias,
        info.version,
        actor=actor,
        reason=reason.strip(),
        action="promote",
        details=details,
    )
    return registry.get(info.model, version=info.version)


def rollback(
    registry: Registry,
    model: str,
    *,
    actor: str,
    reason: str,
    version: int | None = None,
    details: dict | None = None,
) -> VersionInfo:
    """Move `champion` back to `version`, or to the version it held before its last move."""
    if not reason or not reason.strip():
        raise RegistryError("a rollback needs a reason")
    target = version if version is not None else registry.previous_champion(model)
    _require_artifact(registry.get(model, version=target))
    return registry.rollback(
        model, actor=actor, reason=reason.strip(), version=target, details=details
    )


def reject_promotion(
    registry: Registry,
    model: str,
    version: int,
    *,
    approver: str | None,
    reason: str,
    details: dict | None = None,
) -> VersionInfo:
    """A person (the retrain's approval step) refused to make `version` the champion: it
    becomes `challenger`, the champion stays, and the audit says who refused and why
    (`approver` None: nobody answered before the approval timed out)."""
    reason = (reason or "").strip() or "no reason given"
    registry.set_alias(
        model,
        CHALLENGER,
        version,
        actor=approver or "approval-timeout",
        reason=f"promotion rejected: {reason}",
        action="promotion_rejected",
        details={**(details or {}), "approver": approver},
    )
    return registry.get(model, version=version)
