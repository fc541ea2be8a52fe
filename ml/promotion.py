"""Whether a freshly trained challenger replaces the champion, and applying that choice.

`decide` is pure: it compares test-split metric dicts (see ml.registry.VersionInfo.metrics) and
explains itself in `reasons`, which end up in the registry's audit trail. The champion's metrics
must come from evaluating the champion on the challenger's test split, not from its own
registration, or the comparison is between different test sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ml.registry import CHALLENGER, CHAMPION, PER_CLASS, Registry

# Float slack so that e.g. 0.915 - 0.905 still counts as an improvement of 0.010.
_EPS = 1e-9


@dataclass(frozen=True)
class PromotionPolicy:
    metric: str = "macro_f1"  # compared on the test split
    min_improvement: float = 0.0  # challenger must beat champion by at least this (absolute)
    max_class_regression: float = 0.10  # largest per-class F1 drop allowed vs champion
    min_test_size: int = 20  # smallest test set (sum of per-class support) to trust


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]  # human-readable, one per check, failed or passed


def support_total(metrics: dict) -> int:
    """Examples behind the metrics: the per-class supports summed (0 without per-class)."""
    return int(sum(per.get("support", 0) for per in metrics.get(PER_CLASS, {}).values()))


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


def _check_classes(challenger: dict, champion: dict, policy: PromotionPolicy) -> tuple[bool, str]:
    old = champion.get(PER_CLASS) or {}
    new = challenger.get(PER_CLASS) or {}
    if not old or not new:
        return True, "per-class check skipped: no per-class metrics to compare"
    drops: list[tuple[float, str, float, float]] = []
    for label, per in old.items():
        if per.get("support", 1) == 0 or "f1" not in per:
            continue  # a class absent from the test split says nothing
        # Same test split, so a class the challenger does not report scored nothing.
        after = float(new.get(label, {}).get("f1", 0.0))
        drops.append((float(per["f1"]) - after, label, float(per["f1"]), after))
    if not drops:
        return True, "per-class check skipped: champion has no per-class f1"
    drop, label, before, after = max(drops)
    ok = drop <= policy.max_class_regression + _EPS
    return ok, (
        f"largest per-class f1 drop {max(drop, 0.0):.3f} on {label!r} ({before:.3f} -> "
        f"{after:.3f}) {'<=' if ok else '>'} {policy.max_class_regression:.3f} allowed"
    )


def decide(challenger: dict, champion: dict | None, policy: PromotionPolicy) -> Decision:
    """Promote only if every check passes; every check reports, so the audit shows all."""
    checks = [_check_size(challenger, policy)]
    if champion is None:
        checks.append((True, "no champion yet"))
    else:
        checks.append(_check_metric(challenger, champion, policy))
        checks.append(_check_classes(challenger, champion, policy))
    return Decision(promote=all(ok for ok, _ in checks), reasons=[why for _, why in checks])


def promote(
    registry: Registry,
    model: str,
    version: int,
    challenger_metrics: dict,
    champion_metrics: dict | None,
    policy: PromotionPolicy,
    actor: str,
) -> Decision:
    """Decide, then move `champion` to the version, or else mark it the `challenger`."""
    decision = decide(challenger_metrics, champion_metrics, policy)
    details: dict[str, Any] = {"reasons": decision.reasons, "policy": asdict(policy)}
    registry.set_alias(
        model,
        CHAMPION if decision.promote else CHALLENGER,
        version,
        actor=actor,
        reason="; ".join(decision.reasons),
        action="promote" if decision.promote else "set_alias",
        details=details,
    )
    return decision
