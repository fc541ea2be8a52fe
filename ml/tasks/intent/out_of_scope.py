"""Out-of-scope detection: an intent model that can say "none of these".

Every prediction gets an out-of-scope score computed from the fine-tuned model itself, so it
works with no out-of-scope training data at all. Higher means stranger. Three scores are built
in (`METHODS`); bench/oos.py measures them on CLINC150 and the default (ml.config
DEFAULT_OOS_METHOD) is the one that measured best on its dev queries, `energy`:

- `energy`: minus the log-sum-exp of the in-scope logits (Liu et al. 2020): low for a query
  the head has strong evidence for, whichever intent;
- `msp`: one minus the largest calibrated in-scope probability (Hendrycks & Gimpel 2017;
  Larson et al. 2019's "oos-threshold");
- `mahalanobis` (Podolskiy et al. 2021): the squared Mahalanobis distance from the encoder's
  representation of the text (the last layer's [CLS] vector: ml.tasks.intent.model
  .batched_outputs) to the nearest in-scope intent's mean, under one covariance shared by the
  intents, fitted on the train split after fine-tuning (Ledoit-Wolf shrinkage, so a few
  examples in many dimensions still invert).

Labelled out-of-scope examples (the label `oos` by default: TrainConfig.oos_label) are used
when the train split has them: they become one more class of the head (Larson et al.'s
"oos-train"), which teaches the encoder where out-of-scope queries lie, and a query that class
wins is answered out of scope whatever its score. They never enter the intents' means, the
in-scope probabilities or the threshold.

The threshold is calibrated on the validation split's in-scope queries to a target share kept
in scope (TrainConfig.oos_target): the smallest score that keeps that share, counting the
queries the head's own out-of-scope class takes as lost. Labelled out-of-scope queries are
needed to say more: when the train split has at least 2 x MIN_LABELLED_OOS of them, half
(`held_out_oos`) are held out of training into validation, and when validation has at least
MIN_LABELLED_OOS the threshold is raised, keeping more in-scope queries, as far as
TrainConfig.oos_recall_target of them are still answered out of scope (never lowered: the
in-scope target is the floor). It is written, with the method and its
statistics, into the artifact (out_of_scope.json; out_of_scope.safetensors for mahalanobis)
before the artifact is hashed, so its sha256 covers them. An artifact without them (trained before this feature)
loads and predicts as before: never out of scope, no score.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifact.files import OOS_FILE, OOS_STATS_FILE
from ml.artifact.integrity import ArtifactIntegrityError
from ml.training.calibration import softmax

# The label an out-of-scope answer carries, whatever the training data called its examples.
OUT_OF_SCOPE = "out_of_scope"
METHODS = ("energy", "msp", "mahalanobis")
# FPR is read where this share of in-scope queries is kept (the OOD literature's FPR@95%TPR).
TPR_FOR_FPR = 0.95
# Fewest labelled out-of-scope validation queries the recall rule trusts (one query moves the
# recall by a tenth at most), and half the train rows needed before any are held out for it.
MIN_LABELLED_OOS = 10


@dataclass(frozen=True)
class Detector:
    """An artifact's out-of-scope detector: how to score, where to cut, which classes count."""

    method: str
    threshold: float | None  # None: no validation query to calibrate on (never by score)
    target: float  # share of in-scope validation queries the threshold keeps
    oos_label: str  # what the training data called out-of-scope examples
    in_scope: np.ndarray  # indices of the head's in-scope classes
    head_class: int | None  # the head's out-of-scope class (trained from labelled examples)
    temperature: float = 1.0
    # mahalanobis: the whitening matrix W (d, d), W.T @ W = inverse shared covariance, and
    # the in-scope class means already whitened (k, d).
    whitening: np.ndarray | None = None
    means: np.ndarray | None = None

    @property
    def needs_features(self) -> bool:
        return self.method == "mahalanobis"

    def scores(self, logits: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """The out-of-scope score of each row (higher: stranger), float64."""
        if self.method == "mahalanobis":
            if features is None or self.whitening is None or self.means is None:
                raise ValueError("mahalanobis scores need the encoder's features")
            return mahalanobis_scores(features, self.whitening, self.means)
        if self.method == "msp":
            return msp_scores(logits, self.in_scope, self.temperature)
        return energy_scores(logits, self.in_scope)

    def head_rejects(self, logits: np.ndarray) -> np.ndarray:
        """Rows the head's own out-of-scope class wins (never, without such a class)."""
        if self.head_class is None or len(logits) == 0:
            return np.zeros(len(logits), dtype=bool)
        return np.asarray(logits).argmax(axis=1) == self.head_class

    def decide(self, logits: np.ndarray, features: np.ndarray | None = None) -> Decisions:
        scores = self.scores(logits, features)
        rejected = self.head_rejects(logits)
        over = scores > self.threshold if self.threshold is not None else np.zeros_like(rejected)
        best = best_in_scope(logits, self.in_scope)
        return Decisions(scores, rejected | over, rejected, best)


@dataclass(frozen=True)
class Decisions:
    scores: np.ndarray  # the method's score per row
    out_of_scope: np.ndarray  # bool: answered out of scope
    head_rejected: np.ndarray  # bool: the head's out-of-scope class won
    best: np.ndarray  # index (into the head's labels) of the best in-scope class

    def ranking(self) -> np.ndarray:
        """Scores for threshold-free metrics: what the head rejects ranks strangest."""
        return np.where(self.head_rejected, np.inf, self.scores)


# --- scores ------------------------------------------------------------------------------------


def best_in_scope(logits: np.ndarray, in_scope: np.ndarray) -> np.ndarray:
    """Index of the highest in-scope logit per row (the head's label indices)."""
    if len(logits) == 0:
        return np.zeros(0, dtype=np.int64)
    return in_scope[np.asarray(logits)[:, in_scope].argmax(axis=1)]


def msp_scores(logits: np.ndarray, in_scope: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """1 - the largest in-scope probability (softmax over every class at `temperature`)."""
    if len(logits) == 0:
        return np.zeros(0)
    return 1.0 - softmax(logits, temperature)[:, in_scope].max(axis=1).astype(np.float64)


def energy_scores(logits: np.ndarray, in_scope: np.ndarray) -> np.ndarray:
    """-log sum exp of the in-scope logits: low energy is familiar, high is strange."""
    z = np.asarray(logits, dtype=np.float64)[:, in_scope]
    if len(z) == 0:
        return np.zeros(0)
    top = z.max(axis=1)
    return -(top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def mahalanobis_scores(
    features: np.ndarray, whitening: np.ndarray, means: np.ndarray
) -> np.ndarray:
    """Squared Mahalanobis distance to the nearest class mean: min_k |W z - W mu_k|^2."""
    z = np.asarray(features, dtype=np.float64) @ whitening.T
    if len(z) == 0:
        return np.zeros(0)
    distances = (z**2).sum(axis=1)[:, None] - 2.0 * z @ means.T + (means**2).sum(axis=1)[None, :]
    return np.maximum(distances.min(axis=1), 0.0)


def fit_mahalanobis(
    features: np.ndarray, label_ids: np.ndarray, in_scope: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(whitening, whitened means) from the train split's features of in-scope rows.

    One covariance shared by the classes (Lee et al. 2018; Podolskiy et al. 2021), estimated
    from each row's offset to its class mean and shrunk towards a scaled identity (Ledoit-Wolf):
    a model with 384 dimensions trained on a few dozen examples still gets an invertible one.
    """
    x = np.asarray(features, dtype=np.float64)
    ids = np.asarray(label_ids)
    keep = np.isin(ids, in_scope)
    x, ids = x[keep], ids[keep]
    if len(x) == 0:
        raise ValueError("no in-scope train rows to fit the Mahalanobis statistics on")
    means = np.stack([x[ids == k].mean(axis=0) for k in in_scope])
    position = {int(k): i for i, k in enumerate(in_scope)}
    centered = x - means[[position[int(k)] for k in ids]]
    covariance = shrunk_covariance(centered)
    whitening = np.linalg.inv(np.linalg.cholesky(covariance))
    return whitening, means @ whitening.T


def shrunk_covariance(centered: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf (2004) shrinkage of the covariance of already centered rows towards
    mu * I (mu: the mean variance), with the shrinkage intensity estimated from the data
    (the formula scikit-learn's ledoit_wolf uses); a hair of identity keeps constant features
    from making it singular."""
    n, d = centered.shape
    sample = centered.T @ centered / n
    mu = float(np.trace(sample)) / d
    squared = centered**2
    beta_sum = float((squared.T @ squared).sum())
    delta_sum = float((sample**2).sum())
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * float(np.trace(sample)) + d * mu**2) / d
    shrinkage = 0.0 if delta <= 0 else min(max(beta, 0.0), delta) / delta
    shrunk = (1.0 - shrinkage) * sample + shrinkage * mu * np.eye(d)
    return shrunk + max(mu, 1e-12) * 1e-6 * np.eye(d)


# --- threshold ---------------------------------------------------------------------------------


def calibrate_threshold(
    scores: np.ndarray, rejected: np.ndarray, target: float
) -> tuple[float | None, str | None]:
    """The smallest threshold that keeps `target` of these in-scope rows in scope (a row is
    kept when the head does not reject it and its score is <= the threshold), and why it
    stopped short, if it did.

    target 1 keeps every row the head keeps: the threshold is their highest score. When the
    head alone rejects more than 1 - target, no threshold reaches the target: every row the
    head keeps is kept ("head"). No rows: None ("no in-scope validation rows").
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"out-of-scope target must be > 0 and <= 1, got {target}")
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return None, "no in-scope validation rows"
    kept = np.sort(scores[~np.asarray(rejected, dtype=bool)])
    if len(kept) == 0:
        return None, "the head rejects every in-scope validation row"
    need = math.ceil(target * len(scores) - 1e-9)
    if need > len(kept):
        return float(kept[-1]), "head"
    return float(kept[need - 1]), None


def raise_for_recall(
    floor: float,
    in_scope: np.ndarray,
    oos: np.ndarray,
    oos_rejected: np.ndarray,
    recall_target: float,
) -> float:
    """The threshold raised from `floor` to the highest in-scope score (of the rows the head
    keeps) at which `recall_target` of the labelled out-of-scope rows are still out of scope
    (the head rejects them, or they score above it); `floor` when even it catches fewer.

    Raising keeps more in-scope queries than the in-scope target asks, and never fewer.
    """
    oos_rejected = np.asarray(oos_rejected, dtype=bool)
    by_score = np.sort(np.asarray(oos, dtype=np.float64)[~oos_rejected])[::-1]
    need = math.ceil(recall_target * len(oos_rejected) - 1e-9) - int(oos_rejected.sum())
    if need > len(by_score):
        return floor
    # Out of scope when above the threshold: the need-th strangest must stay above it.
    cut = by_score[need - 1] if need > 0 else np.inf
    in_scope = np.asarray(in_scope, dtype=np.float64)
    below = in_scope[(in_scope >= floor) & (in_scope < cut)]
    return float(max(below.max(), floor)) if len(below) else floor


def held_out_oos(texts: Sequence[str], labels: Sequence[str], oos_label: str) -> np.ndarray:
    """Train rows to hold out into validation (a bool mask): half the rows labelled
    `oos_label` (by the sha256 of their text, so the same rows on every run and in any order)
    when there are at least 2 x MIN_LABELLED_OOS of them; none otherwise."""
    rows = [i for i, y in enumerate(labels) if y == oos_label]
    mask = np.zeros(len(labels), dtype=bool)
    if len(rows) < 2 * MIN_LABELLED_OOS:
        return mask
    ordered = sorted(rows, key=lambda i: hashlib.sha256(texts[i].encode("utf-8")).hexdigest())
    mask[ordered[: len(rows) // 2]] = True
    return mask


# --- metrics -----------------------------------------------------------------------------------


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for `positive` rows (out of scope) against the
    others: the chance that a random positive scores above a random negative, ties half
    (Mann-Whitney U from average ranks). NaN without both kinds of rows."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties (inf included: np.unique groups equal values).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def fpr_at_tpr(scores: np.ndarray, positive: np.ndarray, tpr: float = TPR_FOR_FPR) -> float:
    """Share of out-of-scope rows (`positive`) kept in scope by the threshold that keeps `tpr`
    of the in-scope rows (the lowest such threshold on these rows). NaN without both kinds."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    inside, outside = np.sort(scores[~positive]), scores[positive]
    if len(inside) == 0 or len(outside) == 0:
        return float("nan")
    cut = inside[math.ceil(tpr * len(inside) - 1e-9) - 1]
    return float((outside <= cut).mean())


def is_out_of_scope_label(labels: Sequence[str], oos_label: str) -> np.ndarray:
    """Rows whose true label says out of scope: the model's oos_label or `out_of_scope`."""
    return np.array([y in (oos_label, OUT_OF_SCOPE) for y in labels], dtype=bool)


def oos_metrics(
    detector: Detector,
    decisions: Decisions,
    y_true: Sequence[str],
    labels: Sequence[str],
) -> dict[str, float | int]:
    """Out-of-scope figures of labelled rows at the artifact's threshold.

    Always: `oos_n` (rows labelled out of scope). With in-scope rows: `in_scope_accuracy` (a
    row counts only when kept in scope with its true label: Larson et al.'s in-scope accuracy)
    and `in_scope_kept`. With out-of-scope rows: `oos_recall`, `oos_precision` (0 when nothing
    is answered out of scope); with both kinds also `oos_auroc` and `oos_fpr_at_95_tpr`
    (threshold-free; what the head rejects ranks strangest). Left out when undefined: the
    registry stores finite numbers only.
    """
    truth = is_out_of_scope_label(y_true, detector.oos_label)
    said = decisions.out_of_scope
    out: dict[str, float | int] = {"oos_n": int(truth.sum())}
    inside = ~truth
    if inside.any():
        best = np.array([labels[i] for i in decisions.best], dtype=object)
        right = ~said & (best == np.array(list(y_true), dtype=object))
        out["in_scope_accuracy"] = float(right[inside].mean())
        out["in_scope_kept"] = float((~said[inside]).mean())
    if truth.any():
        out["oos_recall"] = float(said[truth].mean())
        out["oos_precision"] = float(said[truth].sum() / said.sum()) if said.any() else 0.0
        if inside.any():
            ranking = decisions.ranking()
            out["oos_auroc"] = auroc(ranking, truth)
            out["oos_fpr_at_95_tpr"] = fpr_at_tpr(ranking, truth)
    return out


# --- answers -----------------------------------------------------------------------------------


def answer_fields(
    detector: Detector | None, decisions: Decisions | None, row: int
) -> dict[str, Any]:
    """The out-of-scope fields of one prediction: whether it is out of scope, its score and the
    threshold (None for an artifact without a detector), and the best in-scope label."""
    if detector is None or decisions is None:
        return {"out_of_scope": False, "oos_score": None, "oos_threshold": None}
    return {
        "out_of_scope": bool(decisions.out_of_scope[row]),
        "oos_score": round(float(decisions.scores[row]), 4),
        "oos_threshold": None if detector.threshold is None else round(detector.threshold, 4),
    }


# --- artifact ----------------------------------------------------------------------------------


def fit_detector(
    method: str,
    target: float,
    oos_label: str,
    labels: Sequence[str],
    temperature: float,
    validation: tuple[np.ndarray, np.ndarray | None, Sequence[str]],
    train: tuple[np.ndarray | None, np.ndarray] | None = None,
    recall_target: float | None = None,
) -> tuple[Detector, dict[str, Any]]:
    """The detector of a freshly trained model and its record (out_of_scope.json's content).

    `validation` is (logits, features or None, true labels); `train` (features, label ids) is
    needed by `mahalanobis` only. The threshold is calibrated on validation's in-scope rows of
    intents the model knows: a row of an intent absent from train is out of scope for this
    model, and keeping it would only raise the threshold. With `recall_target` and at least
    MIN_LABELLED_OOS labelled out-of-scope rows, it is then raised (raise_for_recall). The
    record's validation figures (oos_metrics) count every row.
    """
    if method not in METHODS:
        raise ValueError(f"unknown out-of-scope method {method!r}: one of {', '.join(METHODS)}")
    head_class = labels.index(oos_label) if oos_label in labels else None
    in_scope = np.array([i for i in range(len(labels)) if i != head_class], dtype=np.int64)
    whitening = means = None
    if method == "mahalanobis":
        if train is None or train[0] is None:
            raise ValueError("the mahalanobis method needs the train split's features")
        whitening, means = fit_mahalanobis(train[0], train[1], in_scope)
    draft = Detector(
        method, None, target, oos_label, in_scope, head_class, temperature, whitening, means
    )
    logits, features, y_true = validation
    decisions = draft.decide(logits, features)
    known = set(labels) - {oos_label}
    calibrate_on = np.array([y in known for y in y_true], dtype=bool)
    floor, limited_by = calibrate_threshold(
        decisions.scores[calibrate_on], decisions.head_rejected[calibrate_on], target
    )
    labelled = is_out_of_scope_label(y_true, oos_label)
    threshold, rule = floor, "in_scope_target"
    if recall_target is not None and floor is not None and labelled.sum() >= MIN_LABELLED_OOS:
        kept = calibrate_on & ~decisions.head_rejected
        threshold = raise_for_recall(
            floor,
            decisions.scores[kept],
            decisions.scores[labelled],
            decisions.head_rejected[labelled],
            recall_target,
        )
        rule = "recall_target" if threshold > floor else rule
    detector = Detector(
        method, threshold, target, oos_label, in_scope, head_class, temperature, whitening, means
    )
    checked = oos_metrics(detector, detector.decide(logits, features), y_true, labels)
    record = {
        "method": method,
        "threshold": threshold,
        "target": target,
        "oos_label": oos_label,
        "head_class": oos_label if head_class is not None else None,
        "limited_by": limited_by,
        "recall_target": recall_target,
        "rule": rule,  # which target set the threshold (in_scope_target: the floor)
        "in_scope_threshold": floor,
        "fitted_on": "validation",
        "validation": checked,
    }
    return detector, record


def write_detector(folder: Path, detector: Detector, record: dict[str, Any]) -> None:
    """out_of_scope.json (and for mahalanobis out_of_scope.safetensors) into an artifact
    folder being written: inside it before it is hashed."""
    from safetensors.numpy import save_file

    from ml.artifact.files import write_json

    write_json(folder / OOS_FILE, record)
    if detector.whitening is not None and detector.means is not None:
        tensors = {
            "whitening": detector.whitening.astype(np.float32),
            "means": detector.means.astype(np.float32),
        }
        save_file(tensors, str(folder / OOS_STATS_FILE))


def read_detector(
    artifact_dir: Path, labels: Sequence[str], temperature: float = 1.0
) -> Detector | None:
    """The artifact's detector; None for an artifact trained before out-of-scope detection
    (no out_of_scope.json). ArtifactIntegrityError when the files are unusable."""
    path = Path(artifact_dir) / OOS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        method, target, oos_label = record["method"], record["target"], record["oos_label"]
        threshold = record["threshold"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactIntegrityError(f"{path}: unreadable ({exc})") from exc
    if method not in METHODS or not isinstance(oos_label, str) or not oos_label:
        raise ArtifactIntegrityError(f"{path}: unknown method or out-of-scope label")
    if not _number(target) or not 0 < target <= 1:
        raise ArtifactIntegrityError(f"{path}: 'target' must be a number in (0, 1]")
    if threshold is not None and not _number(threshold):
        raise ArtifactIntegrityError(f"{path}: 'threshold' must be a finite number or null")
    head_class = labels.index(oos_label) if oos_label in labels else None
    in_scope = np.array([i for i in range(len(labels)) if i != head_class], dtype=np.int64)
    whitening = means = None
    if method == "mahalanobis":
        whitening, means = _read_stats(Path(artifact_dir) / OOS_STATS_FILE, len(in_scope))
    return Detector(
        method,
        None if threshold is None else float(threshold),
        float(target),
        oos_label,
        in_scope,
        head_class,
        temperature,
        whitening,
        means,
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_stats(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise ArtifactIntegrityError(f"{path} is missing: the mahalanobis method needs it")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ArtifactIntegrityError(f"{path}: unreadable ({exc})") from exc
    whitening, means = tensors.get("whitening"), tensors.get("means")
    if (
        whitening is None
        or means is None
        or whitening.ndim != 2
        or whitening.shape[0] != whitening.shape[1]
        or means.shape != (classes, whitening.shape[0])
        or not (np.isfinite(whitening).all() and np.isfinite(means).all())
    ):
        raise ArtifactIntegrityError(
            f"{path}: expected a square 'whitening' matrix and 'means' of {classes} in-scope "
            "classes, finite"
        )
    return whitening.astype(np.float64), means.astype(np.float64)
