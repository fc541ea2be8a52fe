"""A day's figures (the `figures` JSON of the registry's `monitoring_days`, docs/monitoring.md)
and its checks against the thresholds, from the day's and the reference's counts.

Each check: {"name", "value", "threshold", "drift", "configured", "noise", "p_value",
"large"}: `threshold` is the one applied, the larger of the configured one and the sampling
noise for the day's and the reference's sizes (ml.monitoring.drift); `p_value` how often
sampling alone gives the value or more; `large` whether it passes the configured one. Rate
checks compare the day's rate with the reference's plus that margin. The `combined` check
(combined_check) weighs the others' p-values together.
"""

from __future__ import annotations

import math
from typing import Any

from ml.config import DriftSettings
from ml.monitoring import drift
from ml.monitoring.profiles import OUT_OF_SCOPE


def _mix(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 6) for k, v in sorted(counts.items())} if total else {}


def _round(x: float | None, places: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), places)


def _significant(p: float) -> float:
    """A p-value to 4 significant digits: rounding to decimal places would make a small one 0,
    which the combined check would weigh as certainty."""
    return float(f"{p:.4g}")


def _check(name: str, value: float | None, configured: float | None, noise: float,
           p_value: float, base: float = 0.0) -> dict[str, Any] | None:  # fmt: skip
    """A check past its threshold: value above `base` + max(configured, noise)."""
    if configured is None or value is None:
        return None
    threshold = base + max(configured, noise)
    return {
        "name": name,
        "value": _round(value),
        "threshold": _round(threshold),
        "drift": bool(value > threshold),
        "configured": configured,
        "noise": _round(noise),
        "p_value": _significant(p_value),
        # A change as large as the configured threshold calls large, real or not.
        "large": bool(value > base + configured),
    }


# Checks that measure again what another one does (the label mix, the confidence): left out
# of the combined check, which would otherwise count their evidence twice. The confidence is
# counted by its whole histogram: a shift need not push answers under the low-confidence line.
_AGAIN = frozenset({"label_js", "low_confidence_share"})


def combined_check(checks: list[dict[str, Any]], level: float) -> dict[str, Any] | None:
    """The checks' evidence together: Fisher's combination of their p-values, one check per
    thing measured (the label mix, confidence, out-of-scope answers, length, words), past the
    `level` quantile and with one change large enough to matter (a check past its configured
    threshold). It catches a day whose changes are each within their own sampling noise but
    all point the same way."""
    evidence = [c for c in checks if c["name"] not in _AGAIN and c["p_value"] is not None]
    if len(evidence) < 2:
        return None
    value, df = drift.fisher([c["p_value"] for c in evidence])
    threshold = drift.chi2_quantile(level, df)
    return {
        "name": "combined",
        "value": _round(value),
        "threshold": _round(threshold),
        "drift": bool(value > threshold and any(c["large"] for c in evidence)),
        "configured": None,
        "noise": _round(threshold),
        "p_value": _significant(drift.chi2_sf(value, df)),
        "large": any(c["large"] for c in evidence),
    }


def day_figures(day: dict[str, Any], ref: dict[str, Any], limits: DriftSettings) -> dict[str, Any]:
    """The figures of one day (`day`: ml.monitoring.profiles.day_profile) against `ref`."""
    n, level = day["predictions"], limits.confidence
    # Label mix: out-of-scope answers are the OOS check's; the mix compares in-scope intents.
    in_day = {k: v for k, v in day["label_counts"].items() if k != OUT_OF_SCOPE}
    in_ref = {k: v for k, v in ref["label_counts"].items() if k != OUT_OF_SCOPE}
    labels, a, e = drift.aligned(in_day, in_ref)
    n_in, n_ref = sum(a), sum(e)
    psi_terms = drift.psi_terms(a, e) if n_in else []
    js_terms = drift.js_terms(a, e) if n_in else []
    label_psi = float(sum(psi_terms)) if n_in else None
    label_js = float(sum(js_terms)) if n_in else None

    conf = day["confidences"]
    hist, ref_hist = drift.histogram(conf), ref["confidence_histogram"]
    confidence_psi = drift.psi(hist, ref_hist) if conf and ref["confidence_n"] else None
    p10, p50, p90 = drift.quantiles(conf, (0.1, 0.5, 0.9))

    cut, ref_low = ref.get("low_confidence_cut"), ref.get("low_confidence_share")
    low = sum(c <= cut for c in conf) / len(conf) if conf and cut is not None else None

    flags = day["oos_flags"]
    oos_rate = sum(flags) / len(flags) if flags else None
    ref_oos = ref.get("oos_rate")

    lengths = day["lengths"]
    l50, l90 = drift.quantiles(lengths, (0.5, 0.9))
    length_psi = drift.psi(day["length_counts"], ref["length_counts"]) if lengths else None

    unseen = drift.word_share(day["unseen_word_sums"])
    ref_unseen = ref["unseen_token_share"]

    bins, n_conf, n_len = len(labels), len(conf), len(lengths)
    length_bins = len(day["length_counts"])
    n_oos = len(flags)
    candidates = [
        _check("label_psi", label_psi, limits.label_psi, drift.psi_noise(level, bins, n_in, n_ref),
               drift.psi_p_value(label_psi or 0.0, bins, n_in, n_ref)),
        _check("label_js", label_js, limits.label_js, drift.js_noise(level, bins, n_in, n_ref),
               drift.psi_p_value(label_psi or 0.0, bins, n_in, n_ref)),
        _check("confidence_psi", confidence_psi, limits.confidence_psi,
               drift.psi_noise(level, len(hist), n_conf, ref["confidence_n"]),
               drift.psi_p_value(confidence_psi or 0.0, len(hist), n_conf, ref["confidence_n"])),
        _check("low_confidence_share", low, limits.low_confidence if ref_low is not None else None,
               drift.rate_noise(level, low or 0.0, ref_low or 0.0, n_conf, ref["confidence_n"]),
               drift.rate_p_value(low or 0.0, ref_low or 0.0, n_conf, ref["confidence_n"]),
               ref_low or 0.0),
        _check("oos_rate", oos_rate, limits.oos_rate if ref_oos is not None else None,
               drift.rate_noise(level, oos_rate or 0.0, ref_oos or 0.0, n_oos, ref["oos_n"]),
               drift.rate_p_value(oos_rate or 0.0, ref_oos or 0.0, n_oos, ref["oos_n"]),
               ref_oos or 0.0),
        _check("length_psi", length_psi, limits.length_psi,
               drift.psi_noise(level, length_bins, n_len, ref["train_rows"]),
               drift.psi_p_value(length_psi or 0.0, length_bins, n_len, ref["train_rows"])),
        # Over messages, not words: a message's words come together (drift.word_sums).
        _check("unseen_token_share", unseen, limits.unseen_tokens,
               drift.share_noise(level, day["unseen_word_sums"], ref["unseen_word_sums"]),
               drift.share_p_value(day["unseen_word_sums"], ref["unseen_word_sums"]),
               ref_unseen),
    ]  # fmt: skip
    checks = [c for c in candidates if c is not None]
    combined = combined_check(checks, level) if limits.combined else None
    checks += [combined] if combined else []
    enough = n >= limits.min_predictions
    if not enough:
        for c in checks:
            c["drift"] = False
    drifted = [c["name"] for c in checks if c["drift"]]
    status = "no_data" if not enough else ("drift" if drifted else "ok")
    return {
        "status": status,
        "predictions": n,
        "versions": day["versions"],
        "label_mix": _mix(day["label_counts"]),
        "reference_label_mix": _mix(ref["label_counts"]),
        "label_psi": _round(label_psi),
        "label_js": _round(label_js),
        "label_psi_by_label": {
            k: _round(float(v)) for k, v in zip(labels, psi_terms, strict=False)
        },
        "label_js_by_label": {k: _round(float(v)) for k, v in zip(labels, js_terms, strict=False)},
        "confidence": {
            "mean": _round(sum(conf) / len(conf)) if conf else None,
            "p10": _round(p10),
            "p50": _round(p50),
            "p90": _round(p90),
            "histogram": hist,
            "reference_histogram": list(ref_hist),
        },
        "confidence_psi": _round(confidence_psi),
        "low_confidence_share": _round(low),
        "reference_low_confidence_share": _round(ref_low),
        "low_confidence_cut": _round(cut),
        "oos_rate": _round(oos_rate),
        "reference_oos_rate": _round(ref_oos),
        "length": {
            "mean": _round(sum(lengths) / len(lengths)) if lengths else None,
            "p50": _round(l50),
            "p90": _round(l90),
            "reference_mean": _round(ref["length_mean"]),
            "edges": ref["length_edges"],
            "histogram": day["length_counts"],
            "reference_histogram": ref["length_counts"],
        },
        "length_psi": _round(length_psi),
        "unseen_token_share": _round(unseen),
        "reference_unseen_token_share": _round(ref_unseen),
        "checks": checks,
        "drifted": drifted,
        "min_predictions": limits.min_predictions,
        "reference": {
            "version": ref["version"],
            "snapshot_hash": ref["snapshot_hash"],
            "train_rows": ref["train_rows"],
            "held_out_messages": ref["held_out_messages"],
            "label_effective_n": _round(ref["label_effective_n"], 1),
        },
    }
