"""The drift measures, on counts: PSI and Jensen-Shannon divergence between two distributions
over the same bins, the sampling noise each would show between two samples of one
distribution, and the word tokens and length bins the profiles count.

Pure functions of numbers (numpy only): ml.monitoring.profiles builds the counts, and
ml.monitoring.checks compares them against the configured thresholds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

import numpy as np

# Confidence bins: 0.0-0.1, ..., 0.9-1.0 (the last includes 1.0).
CONFIDENCE_BINS = 10
# Added to every bin's count before shares are taken (Jeffreys' prior): a bin one side never
# saw gives a finite PSI, as large as its count on the other side justifies.
SMOOTHING = 0.5
# The low-confidence line: this quantile of the reference's answers' confidence. A shift
# lowers confidence on the messages it touches; the share under the line tests that one
# direction, with more power than the whole histogram's PSI.
LOW_CONFIDENCE_QUANTILE = 0.1
# Length bins: the reference's deciles of words per message.
LENGTH_QUANTILES = tuple(q / 10 for q in range(1, 10))

_WORD = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")


def tokens(text: str) -> list[str]:
    """A message's words, lower case, every run of digits one token `0` (numbers change from
    message to message without changing what is asked)."""
    return [_DIGITS.sub("0", w) for w in _WORD.findall(text.lower())]


def shares(counts: Sequence[float]) -> np.ndarray:
    """Counts as smoothed shares (see SMOOTHING)."""
    c = np.asarray(counts, dtype=float) + SMOOTHING
    return c / c.sum()


def psi_terms(actual: Sequence[float], expected: Sequence[float]) -> np.ndarray:
    """Each bin's share of the population stability index of `actual` counts against
    `expected` counts: (a - e) * ln(a / e) on smoothed shares; their sum is the PSI."""
    a, e = shares(actual), shares(expected)
    return (a - e) * np.log(a / e)


def psi(actual: Sequence[float], expected: Sequence[float]) -> float:
    return float(psi_terms(actual, expected).sum()) if len(actual) else 0.0


def js_terms(actual: Sequence[float], expected: Sequence[float]) -> np.ndarray:
    """Each bin's share of the Jensen-Shannon divergence (base 2: 0 for equal distributions,
    1 for disjoint ones) of the smoothed shares."""
    a, e = shares(actual), shares(expected)
    m = (a + e) / 2
    return (a * np.log2(a / m) + e * np.log2(e / m)) / 2


def js(actual: Sequence[float], expected: Sequence[float]) -> float:
    return float(js_terms(actual, expected).sum()) if len(actual) else 0.0


def chi2_quantile(level: float, df: int) -> float:
    """The `level` quantile of a chi-squared distribution with `df` degrees of freedom
    (Wilson-Hilferty: within a few percent for df >= 1 at the levels used here)."""
    if df < 1:
        return 0.0
    z = NormalDist().inv_cdf(level)
    k = 2 / (9 * df)
    return df * max(1 - k + z * math.sqrt(k), 0.0) ** 3


def normal_sf(z: float) -> float:
    """P(N(0, 1) > z), exact in the far tail too (1 - cdf is 0 from z = 8.3 on, which would
    give the combined check an infinite weight of evidence)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_sf(x: float, df: int) -> float:
    """P(chi2(df) > x), by the same Wilson-Hilferty approximation as chi2_quantile."""
    if df < 1 or x <= 0:
        return 1.0
    k = 2 / (9 * df)
    return normal_sf(((x / df) ** (1 / 3) - (1 - k)) / math.sqrt(k))


def psi_p_value(value: float, bins: int, n: int, n_reference: int) -> float:
    """How often two samples of one distribution differ by this PSI or more (psi_noise's model)."""
    if n < 1 or n_reference < 1 or bins < 2:
        return 1.0
    return chi2_sf(value / (1 / n + 1 / n_reference), bins - 1)


def rate_p_value(rate: float, reference_rate: float, n: int, n_reference: int) -> float:
    """How often a day's rate lies this far above the reference's by sampling alone
    (rate_noise's model, one-sided)."""
    spread = _pooled_spread(rate, reference_rate, n, n_reference)
    if not 0 < spread < math.inf:
        return 1.0
    return normal_sf((rate - reference_rate) / spread)


def _pooled_spread(rate: float, reference_rate: float, n: int, n_reference: int) -> float:
    """The standard error of the difference of two rates under "nothing changed": the rate
    pooled over both samples (the two-proportion test); inf without both samples."""
    if n < 1 or n_reference < 1:
        return math.inf
    p = (rate * n + reference_rate * n_reference) / (n + n_reference)
    return math.sqrt(p * (1 - p) * (1 / n + 1 / n_reference))


def word_sums(messages: Iterable[tuple[int, int]]) -> dict[str, float]:
    """Per-message (words the train split never had, words) pairs, summed as the share test
    needs them: the share of unseen words is a ratio of two sums over messages, and a
    message's words come together (a new topic brings several), so its noise is the ratio
    estimator's over messages, not a proportion's over words."""
    sums = dict.fromkeys(("n", "unseen", "words", "unseen2", "words2", "cross"), 0.0)
    for u, w in messages:
        sums["n"] += 1
        sums["unseen"] += u
        sums["words"] += w
        sums["unseen2"] += u * u
        sums["words2"] += w * w
        sums["cross"] += u * w
    return sums


def share_noise(level: float, day: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """How far above the reference's share of unseen words a day's may lie by sampling alone
    (one-sided, at `level`): the two-sample test of a ratio of sums (word_sums), each sample's
    variance from its messages' residuals around the share pooled over both."""
    spread = _share_spread(day, reference)
    return math.inf if spread == math.inf else NormalDist().inv_cdf(level) * spread


def share_p_value(day: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """How often a day's share of unseen words lies this far above the reference's by sampling
    alone (share_noise's model, one-sided)."""
    spread = _share_spread(day, reference)
    if not 0 < spread < math.inf:
        return 1.0
    return normal_sf(((word_share(day) or 0.0) - (word_share(reference) or 0.0)) / spread)


def word_share(sums: Mapping[str, float]) -> float | None:
    """The share of unseen words in word_sums; None without words."""
    return sums["unseen"] / sums["words"] if sums["words"] else None


def _share_spread(day: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """The standard error of the difference of two shares under "nothing changed": each
    sample's linearised variance sum_i (u_i - R w_i)^2 / ((n - 1) W^2 / n), R pooled."""
    if min(day["n"], reference["n"]) < 2 or not (day["words"] and reference["words"]):
        return math.inf
    pooled = (day["unseen"] + reference["unseen"]) / (day["words"] + reference["words"])

    def variance(s: Mapping[str, float]) -> float:
        residuals = s["unseen2"] - 2 * pooled * s["cross"] + pooled**2 * s["words2"]
        return max(residuals, 0.0) / ((s["n"] - 1) * s["words"] ** 2 / s["n"])

    return math.sqrt(variance(day) + variance(reference))


def fisher(p_values: Sequence[float]) -> tuple[float, int]:
    """Fisher's combination of independent p-values: -2 sum ln p, chi2 with 2k degrees of
    freedom when nothing changed (with its degrees of freedom)."""
    return -2 * sum(math.log(max(p, 1e-300)) for p in p_values), 2 * len(p_values)


def psi_noise(level: float, bins: int, n: int, n_reference: int) -> float:
    """The PSI two samples (of `n` and `n_reference`) of one distribution over `bins` bins stay
    below with probability `level`: PSI is about chi2(bins - 1) * (1/n + 1/n_reference)."""
    if n < 1 or n_reference < 1:
        return math.inf
    return chi2_quantile(level, bins - 1) * (1 / n + 1 / n_reference)


def js_noise(level: float, bins: int, n: int, n_reference: int) -> float:
    """The same for Jensen-Shannon in bits: about PSI / (8 ln 2) for small differences."""
    return psi_noise(level, bins, n, n_reference) / (8 * math.log(2))


def rate_noise(level: float, rate: float, reference_rate: float, n: int, n_reference: int) -> float:
    """How far above the reference's rate a day's `rate` may lie by sampling alone (one-sided,
    at `level`): the two-proportion z-test's margin, the rate pooled over both samples (the
    rate they would share if nothing changed), so a small reference that happened to see none
    does not make a day's few count as drift."""
    spread = _pooled_spread(rate, reference_rate, n, n_reference)
    return math.inf if spread == math.inf else NormalDist().inv_cdf(level) * spread


def expected_answer_mix(
    train_labels: Mapping[str, int], held_out: Sequence[tuple[str, str]]
) -> tuple[dict[str, float], float]:
    """The mix of answers a model should give on traffic like its train split, and the sample
    size that estimate is worth.

    The train split's true-label shares p_i sent through the model's confusions
    C_ij = P(answer j | true label i), counted on `held_out` (true label, answer) pairs the
    model never trained on: q_j = sum_i p_i C_ij. Comparing a day's answers with the true
    labels instead would read the model's own constant confusions as drift. Each label gets
    one pseudo-answer of itself, so a label without held-out rows counts as answered right.

    The size is the multinomial sample whose PSI noise equals this estimate's (delta method:
    (K - 1) / sum_j Var(q_j) / q_j, K answers), at most the train split's size. It is larger
    than the held-out count, since most of q_j's uncertainty is in the few errors.
    """
    total = sum(train_labels.values())
    if total == 0:
        return {}, 0.0
    confusions: dict[str, Counter[str]] = {}
    for true, answer in held_out:
        confusions.setdefault(true, Counter())[answer] += 1
    mix: dict[str, float] = {}
    variance: dict[str, float] = {}
    for label, count in train_labels.items():
        p = count / total
        row = confusions.get(label, Counter()) + Counter({label: 1})
        m = sum(row.values())
        for answer, k in row.items():
            c = k / m
            mix[answer] = mix.get(answer, 0.0) + p * c
            variance[answer] = (
                variance.get(answer, 0.0) + p * p * c * (1 - c) / m + c * c * p * (1 - p) / total
            )
    spread = sum(variance[j] / q for j, q in mix.items() if q > 0)
    size = (len(mix) - 1) / spread if spread > 0 else float(total)
    return dict(sorted(mix.items())), float(min(max(size, 1.0), total))


def low_confidence(confidences: Sequence[float]) -> dict[str, float | None]:
    """The reference's low-confidence line (LOW_CONFIDENCE_QUANTILE of its answers'
    confidence) and the share of its answers at or under it (about that quantile, ties
    included); None without answers."""
    if not len(confidences):
        return {"low_confidence_cut": None, "low_confidence_share": None}
    values = np.asarray(confidences, dtype=float)
    cut = float(np.quantile(values, LOW_CONFIDENCE_QUANTILE))
    return {"low_confidence_cut": cut, "low_confidence_share": float((values <= cut).mean())}


def histogram(values: Iterable[float], bins: int = CONFIDENCE_BINS) -> list[int]:
    """Counts of values in [0, 1] over `bins` equal bins (1.0 in the last)."""
    out = [0] * bins
    for v in values:
        out[min(max(int(v * bins), 0), bins - 1)] += 1
    return out


def length_edges(lengths: Sequence[int]) -> list[float]:
    """The bin edges of message lengths (whole words): the reference's deciles, rounded down,
    duplicates dropped."""
    if not len(lengths):
        return []
    deciles = np.quantile(np.asarray(lengths), LENGTH_QUANTILES)
    return sorted({float(math.floor(x)) for x in deciles})


def binned(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts of values in the bins (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), "left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(int).tolist()


def aligned(
    day: Mapping[str, int], reference: Mapping[str, int]
) -> tuple[list[str], list[int], list[int]]:
    """The labels of both (sorted) and their counts on each side, zeros where absent."""
    labels = sorted(set(day) | set(reference))
    return labels, [day.get(k, 0) for k in labels], [reference.get(k, 0) for k in labels]


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    if not len(values):
        return [None for _ in qs]
    return [float(x) for x in np.quantile(np.asarray(values, dtype=float), qs)]
