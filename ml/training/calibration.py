"""Temperature scaling: make an intent model's probabilities mean what they say.

A fine-tuned classifier's softmax is not a probability. Label smoothing caps the confidence it
learns (~0.9 on the true class), and a model kept from an early epoch is flatter still, so a
model that is right 99% of the time may report 0.3: a router that thresholds on it sends
everything to a person. One scalar T, fitted on the validation split's logits by minimising
the negative log-likelihood (Guo et al. 2017, "On calibration of modern neural networks"),
fixes the scale without changing any prediction: softmax(logits / T) keeps every argmax.

The fitted T is written to the artifact's calibration.json (so the artifact sha256 covers it)
and applied wherever logits become probabilities (ml.tasks.intent.model.Classifier). An artifact without
the file loads with T = 1, as it was trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifact.integrity import ArtifactIntegrityError

CALIBRATION_FILE = "calibration.json"
# Hard bounds on T. 0.05 sharpens a label-smoothed model's logit gaps (~5-7) twentyfold,
# far more than any fit on real data has asked for; 10 flattens them to near uniform.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 10.0
# Bisection steps on log(1/T): 60 halvings of a range of ~5.3 leave ~5e-18, beyond float64.
_STEPS = 60


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature (float64 inside, float32 out)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True) if scaled.size else 0.0
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def expected_calibration_error(probs: np.ndarray, true_ids: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins.

    A router that thresholds on probability needs probabilities that mean what they say.
    """
    if len(true_ids) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == true_ids
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def negative_log_likelihood(logits: np.ndarray, true_ids: np.ndarray, temperature: float) -> float:
    """Mean -log p(true label) under softmax(logits / temperature)."""
    if len(true_ids) == 0:
        return 0.0
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float((log_z - scaled[np.arange(len(true_ids)), true_ids]).mean())


def fit_temperature(logits: np.ndarray, true_ids: np.ndarray) -> dict[str, Any]:
    """The temperature minimising validation NLL within the bounds, and why it stopped there.

    Rows whose label the model does not know (id -1) are left out: no T can make them right.
    With β = 1/T the NLL is convex (a log-sum-exp of lines in β minus a line), so bisecting on
    the sign of its derivative finds the minimum exactly.

    A validation split with no errors (common when it is small) has no minimum: the NLL keeps
    falling as T → 0, each right answer ever surer, down to MIN_TEMPERATURE where every
    probability rounds to 1 and nothing would reach the human queue. n right answers cannot
    vouch for that: T is then the one whose mean validation confidence equals the rule of
    succession's estimate of accuracy, (n + 1) / (n + 2) (0.971 for 33 examples). One error
    is enough to give the NLL a minimum, and then the fit is left alone.

    Returns temperature, n (rows fitted), and limited_by: None (the NLL optimum),
    "confidence_cap" (the floor above), "bounds" (MIN/MAX_TEMPERATURE) or "no validation
    rows" (T = 1).
    """
    logits = np.asarray(logits, dtype=np.float64)
    true_ids = np.asarray(true_ids, dtype=np.int64)
    known = true_ids >= 0
    logits, true_ids = logits[known], true_ids[known]
    n = len(true_ids)
    if n == 0:
        return {"temperature": 1.0, "n": 0, "limited_by": "no validation rows"}

    def nll_slope(log_beta: float) -> float:
        """d NLL / d β at β = exp(log_beta): E_p[z] - z_true, averaged over rows."""
        p = softmax(logits, 1.0 / math.exp(log_beta)).astype(np.float64)
        return float(((p * logits).sum(axis=1) - logits[np.arange(n), true_ids]).mean())

    def mean_confidence(log_beta: float) -> float:
        return float(softmax(logits, 1.0 / math.exp(log_beta)).max(axis=1).mean())

    low, high = -math.log(MAX_TEMPERATURE), -math.log(MIN_TEMPERATURE)
    log_beta = _bisect(lambda b: nll_slope(b) < 0, low, high)
    limited_by = "bounds" if log_beta in (low, high) else None
    cap = (n + 1) / (n + 2)
    if (logits.argmax(axis=1) == true_ids).all() and mean_confidence(log_beta) > cap:
        # Mean confidence rises with β: the largest β whose confidence stays under the cap.
        log_beta = _bisect(lambda b: mean_confidence(b) <= cap, low, log_beta)
        limited_by = "confidence_cap"
    return {"temperature": 1.0 / math.exp(log_beta), "n": n, "limited_by": limited_by}


def _bisect(still_below: Any, low: float, high: float) -> float:
    """The point in [low, high] where the monotone test `still_below` turns False; an end
    when it holds (or fails) all the way."""
    if still_below(high):
        return high
    if not still_below(low):
        return low
    for _ in range(_STEPS):
        mid = (low + high) / 2
        low, high = (mid, high) if still_below(mid) else (low, mid)
    return (low + high) / 2


def calibration_record(logits: np.ndarray, true_ids: np.ndarray) -> dict[str, Any]:
    """Fit T on validation logits and report NLL and ECE there before and after:
    calibration.json's content (also copied into metrics.json and the model card)."""
    fit = fit_temperature(logits, true_ids)
    known = np.asarray(true_ids) >= 0
    scored = np.asarray(logits)[known], np.asarray(true_ids)[known]
    t = fit["temperature"]
    return {
        "method": "temperature scaling (one scalar, validation NLL)",
        "temperature": t,
        "fitted_on": "validation",
        "n": fit["n"],
        "limited_by": fit["limited_by"],
        "bounds": [MIN_TEMPERATURE, MAX_TEMPERATURE],
        "validation": {
            "nll_uncalibrated": negative_log_likelihood(*scored, 1.0),
            "nll": negative_log_likelihood(*scored, t),
            "ece_uncalibrated": expected_calibration_error(softmax(logits, 1.0), true_ids),
            "ece": expected_calibration_error(softmax(logits, t), true_ids),
        },
    }


def read_temperature(artifact_dir: Path) -> float:
    """The artifact's fitted temperature; 1.0 for an artifact made before calibration."""
    path = Path(artifact_dir) / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["temperature"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactIntegrityError(f"{path}: no readable 'temperature' field ({exc})") from exc
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ArtifactIntegrityError(f"{path}: field 'temperature' must be a number > 0")
    if not math.isfinite(value):
        raise ArtifactIntegrityError(f"{path}: field 'temperature' must be finite")
    return float(value)
