"""Numbers as the page prints them, by kind (ml.registry.views.metric_kind): counts as whole
numbers, milliseconds with their unit, rates as percentages, deltas signed and classed
`better` / `worse` / `same` (coloured by the stylesheet; the sign and a word carry it too)."""

from __future__ import annotations

from dataclasses import dataclass

from ml.registry.views import COUNT, MS, PER_S, RATE, SCORE, higher_is_better, metric_kind

MINUS = "\u2212"  # a real minus sign: as wide as the plus, read aloud as "minus"
# The production section's figures (ml.monitoring, ml.feedback): not test metrics, so named
# here. Shares of the day's predictions are percentages; PSI and JS divergence, confidence
# and lengths are scores; a label's share moving is neither better nor worse (NEUTRAL).
FIGURE_KINDS = {
    "predictions": COUNT,
    "corrections": COUNT,
    "predictions_reviewed": COUNT,
    "agreed": COUNT,
    "new_labels": COUNT,
    "agreement_rate": RATE,
    "share": RATE,
    "oos_rate": RATE,
    "unseen_token_share": RATE,
    "confidence": SCORE,
    "psi": SCORE,
    # Drift checks (ml.monitoring) whose value is a share of the day's predictions or words.
    "check:oos_rate": RATE,
    "check:unseen_tokens": RATE,
}
NEUTRAL = frozenset({"share", "predictions", "confidence", "psi"})


def kind(name: str) -> str:
    """The kind of number `name` is: a production figure's (FIGURE_KINDS), a drift check's
    (ending in _rate or _share: a percentage), else a test metric's (metric_kind)."""
    if name in FIGURE_KINDS:
        return FIGURE_KINDS[name]
    if name.startswith("check:") and name.endswith(("_rate", "_share")):
        return RATE
    return metric_kind(name.removeprefix("check:"))


def value(name: str, x: float | None) -> str:
    """`x`, a value of metric `name`, for reading: "1,204", "12.4 ms", "84.2%", "0.731"."""
    if x is None:
        return "n/a"
    kind_ = kind(name)
    if kind_ == COUNT:
        return f"{round(x):,}"
    if kind_ == MS:
        return f"{x:,.1f} ms" if x < 100 else f"{x:,.0f} ms"
    if kind_ == PER_S:
        return f"{x:,.0f}/s"
    if kind_ == RATE:
        return f"{100 * x:.1f}%"
    return f"{x:.3f}"


@dataclass(frozen=True)
class Delta:
    text: str  # signed, with the unit of its kind ("+1.2 pp", "−3.0 ms", "+12")
    css: str  # "better", "worse" or "same" (neither: counts, settings, no change)
    word: str  # the same in words, for screen readers and tooltips

    def __str__(self) -> str:
        return self.text


def delta(name: str, a: float | None, b: float | None) -> Delta | None:
    """b − a of metric `name`, signed, classed by whether it is an improvement."""
    if a is None or b is None:
        return None
    d = b - a
    kind_ = kind(name)
    if kind_ == RATE:
        magnitude, unit, zero = 100 * abs(d), " pp", abs(d) < 5e-4
        text = f"{magnitude:.1f}{unit}"
    elif kind_ == COUNT:
        zero, text = round(d) == 0, f"{abs(round(d)):,}"
    elif kind_ == MS:
        zero, text = abs(d) < 0.05, f"{abs(d):,.1f} ms"
    elif kind_ == PER_S:
        zero, text = abs(d) < 0.5, f"{abs(d):,.0f}/s"
    else:
        zero, text = abs(d) < 5e-4, f"{abs(d):.3f}"
    if zero:
        return Delta(f"±{text}", "same", "no change")
    sign = "+" if d > 0 else MINUS
    better = None if name in NEUTRAL else higher_is_better(name)
    if better is None:
        return Delta(f"{sign}{text}", "same", "changed")
    improved = (d > 0) == better
    return Delta(
        f"{sign}{text}", "better" if improved else "worse", "better" if improved else "worse"
    )
