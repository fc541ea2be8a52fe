"""The drift measures on counts (ml.monitoring.drift): the answer mix a model should give, and
the sampling noise of a rate. Numbers only: the checks on a real champion are in
test_monitoring.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.monitoring import figures
from ml.monitoring.drift import (
    chi2_quantile,
    chi2_sf,
    expected_answer_mix,
    low_confidence,
    normal_sf,
    psi,
    psi_noise,
    psi_p_value,
    rate_noise,
    rate_p_value,
    share_noise,
    share_p_value,
    word_sums,
)
from ml.monitoring.figures import combined_check

LEVEL = 0.999


def test_the_expected_mix_sends_the_true_labels_through_the_held_out_confusions() -> None:
    train = {"a": 100, "b": 100}
    # b is answered `a` half the time on held-out rows, `a` always right.
    held_out = [("a", "a")] * 20 + [("b", "a")] * 10 + [("b", "b")] * 10
    mix, size = expected_answer_mix(train, held_out)
    # One pseudo-answer of itself per label: b's row is a 10/21, b 11/21.
    assert mix["a"] == pytest.approx(0.5 + 0.5 * 10 / 21)
    assert mix["b"] == pytest.approx(0.5 * 11 / 21)
    assert sum(mix.values()) == pytest.approx(1.0)
    # Worth more than the 40 held-out rows (the errors carry the uncertainty), at most train's.
    assert 40 < size <= 200


def test_a_label_without_held_out_rows_counts_as_answered_right() -> None:
    mix, _ = expected_answer_mix({"a": 3, "b": 1}, [("a", "a")])
    assert mix == pytest.approx({"a": 0.75, "b": 0.25})
    assert expected_answer_mix({}, [("a", "a")]) == ({}, 0.0)


def _confused_day(rng: np.random.Generator, n: int, error: float) -> dict[str, int]:
    """A day of the train mix (a 70%, b 30%) answered by a model that says `a` for `error`
    of the b messages."""
    b = rng.random(n) < 0.3
    said_a = ~b | (rng.random(n) < error)
    return {"a": int(said_a.sum()), "b": int((~said_a).sum())}


def test_a_models_constant_confusions_are_not_drift_against_the_expected_mix() -> None:
    """The flaw this measure mends: against the train split's true labels, a model's own
    steady mistakes look like drift every day."""
    rng = np.random.default_rng(0)
    train = {"a": 2800, "b": 1200}
    truth = rng.random(500) < 0.3
    said_a = ~truth | (rng.random(500) < 0.2)
    held_out = [("b" if t else "a", "a" if s else "b") for t, s in zip(truth, said_a, strict=True)]
    mix, size = expected_answer_mix(train, held_out)
    expected = {k: q * size for k, q in mix.items()}

    def alarms(reference: dict[str, float], ref_n: float) -> int:
        fired = 0
        for _ in range(200):
            day = _confused_day(rng, 1000, 0.2)
            counts = [day["a"], day["b"]]
            ref = [reference["a"], reference["b"]]
            fired += psi(counts, ref) > psi_noise(LEVEL, 2, 1000, int(ref_n))
        return fired

    assert alarms(expected, size) <= 2  # 0.1% expected by the noise level
    assert alarms({"a": 2800, "b": 1200}, 4000) >= 100  # most days


def test_a_rate_is_compared_with_both_samples_noise_pooled() -> None:
    # A 48-message reference that saw no out-of-scope answer cannot call 16 of 300 drift.
    assert 16 / 300 < rate_noise(LEVEL, 16 / 300, 0.0, 300, 48)
    # A large reference at 1% can call 10% drift on 300 messages.
    assert 0.10 - 0.01 > rate_noise(LEVEL, 0.10, 0.01, 300, 5000)
    # Nothing seen on either side: no margin needed for nothing.
    assert rate_noise(LEVEL, 0.0, 0.0, 300, 5000) == 0.0
    assert rate_noise(LEVEL, 0.1, 0.0, 0, 5000) == float("inf")


def test_p_values_agree_with_the_noise_they_come_from() -> None:
    for df in (1, 9, 24):
        assert chi2_sf(chi2_quantile(LEVEL, df), df) == pytest.approx(1 - LEVEL, rel=0.05)
    # A PSI at its noise line, a rate at its margin: both at 1 - LEVEL.
    at_noise = psi_noise(LEVEL, 25, 300, 2000)
    assert psi_p_value(at_noise, 25, 300, 2000) == pytest.approx(1 - LEVEL, rel=0.05)
    margin = rate_noise(LEVEL, 0.05, 0.02, 300, 1000)
    assert rate_p_value(0.02 + margin, 0.02, 300, 1000) == pytest.approx(1 - LEVEL, rel=0.3)
    assert rate_p_value(0.0, 0.0, 300, 1000) == 1.0


def _topical_messages(rng: np.random.Generator, n: int, topic_share: float) -> list:
    """(unseen words, words) of n messages of 5-20 words: a message on an unseen topic (with
    probability topic_share) has half its words unseen, any other one or none by chance."""
    out = []
    for _ in range(n):
        words = int(rng.integers(5, 21))
        unseen = words // 2 if rng.random() < topic_share else int(rng.random() < 0.05)
        out.append((unseen, words))
    return out


def test_the_unseen_word_share_is_tested_over_messages_and_keeps_its_false_alarm_rate() -> None:
    rng = np.random.default_rng(0)
    # A reference and a day from the same traffic, 1,000 times: p-values under 1% about 1% of
    # the time. Unseen words come a message's worth at a time; a test over words as
    # independent draws (the two-proportion test) alarms far more often.
    pairs = [
        (word_sums(_topical_messages(rng, 300, 0.02)), word_sums(_topical_messages(rng, 500, 0.02)))
        for _ in range(1000)
    ]
    alarms = sum(share_p_value(day, ref) < 0.01 for day, ref in pairs) / len(pairs)
    assert alarms < 0.025
    as_words = sum(
        rate_p_value(d["unseen"] / d["words"], r["unseen"] / r["words"], d["words"], r["words"])
        < 0.01
        for d, r in pairs
    ) / len(pairs)
    assert as_words > 3 * max(alarms, 0.01)
    # A day where 10% of messages are on the unseen topic: found, past its noise line.
    reference = pairs[0][1]
    shifted = word_sums(_topical_messages(rng, 300, 0.10))
    assert share_p_value(shifted, reference) < 1e-3
    share = shifted["unseen"] / shifted["words"]
    assert share - reference["unseen"] / reference["words"] > share_noise(LEVEL, shifted, reference)
    # Too little to measure a spread: no evidence either way.
    assert share_p_value(word_sums([(1, 5)]), reference) == 1.0
    assert share_noise(LEVEL, word_sums([]), reference) == float("inf")


def test_p_values_stay_finite_evidence_far_in_the_tail() -> None:
    # 1 - cdf is exactly 0 from z = 8.3: Fisher's -2 ln p would then weigh it as ~1,400.
    assert normal_sf(0.0) == 0.5 and normal_sf(10.0) == pytest.approx(7.62e-24, rel=1e-3)
    # 50 of 294 out-of-scope answers against 2 of 430: z 8.47, p about 1.3e-17.
    p = rate_p_value(50 / 294, 2 / 430, 294, 430)
    assert 1e-18 < p < 1e-16
    # Kept to significant digits in the figures, and weighed as it is.
    strong = figures._check("oos_rate", 50 / 294, 0.03, 0.05, p, 2 / 430)
    assert strong["p_value"] == pytest.approx(p, rel=1e-3)
    combined = combined_check([strong, _check("length_psi", 0.5, False)], LEVEL)
    assert combined["value"] == pytest.approx(-2 * math.log(p * 0.5), rel=1e-3)


def _check(name: str, p: float, large: bool) -> dict:
    return {"name": name, "p_value": p, "large": large}


def test_checks_each_within_their_noise_can_drift_together() -> None:
    level = LEVEL
    weak = [_check("label_psi", 0.01, True), _check("oos_rate", 0.01, False),
            _check("confidence_psi", 0.02, True),
            # The label mix and the confidence again: counted once, through the checks above.
            _check("label_js", 1e-9, True), _check("low_confidence_share", 1e-9, True)]  # fmt: skip
    combined = combined_check(weak, level)
    assert combined is not None and combined["drift"]
    # Fisher over three: -2 ln(0.01 * 0.01 * 0.02), 6 degrees of freedom.
    assert combined["value"] == pytest.approx(-2 * math.log(0.01 * 0.01 * 0.02), rel=1e-5)
    assert combined["p_value"] < 1 - level
    # The same evidence with no change large enough to matter, or ordinary p-values: no drift.
    small = [{**c, "large": False} for c in weak]
    assert not combined_check(small, level)["drift"]
    ordinary = [{**c, "p_value": 0.2} for c in weak]
    assert not combined_check(ordinary, level)["drift"]
    assert combined_check(weak[:1], level) is None  # one check is its own evidence


def test_the_low_confidence_line_is_the_references_10th_percentile() -> None:
    line = low_confidence([i / 100 for i in range(1, 101)])
    assert line["low_confidence_cut"] == pytest.approx(0.109)
    assert line["low_confidence_share"] == pytest.approx(0.10)
    assert low_confidence([]) == {"low_confidence_cut": None, "low_confidence_share": None}
