"""The two sides a day is compared on, as counts (never text):

- the **reference** of a champion version, from the training snapshot its registry lineage
  names: the train split's message lengths and vocabulary, and the version's own answers on
  the held-out splits (validation and test, which it never trained on): confidence histogram,
  out-of-scope rate, share of words the train split never had, and its confusions, which turn
  the train split's true-label mix into the mix of answers to expect
  (ml.monitoring.drift.expected_answer_mix). Computed once per version and cached as
  Settings.reports/monitoring/<model>/reference-v<N>.json.
- the **day**: one model's rows of the lake's `predictions` table for one day (their text is
  already redacted by the service, ml.serving.prediction_log).

The vocabulary is kept as 8-byte BLAKE2b digests of the words, so the cached reference (beside
the reports) lists no customer word in clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml import storage
from ml.monitoring.drift import (
    binned,
    expected_answer_mix,
    histogram,
    length_edges,
    low_confidence,
    tokens,
    word_share,
    word_sums,
)
from ml.storage import Location

if TYPE_CHECKING:
    from ml.config import Settings
    from ml.registry.store import VersionInfo

log = logging.getLogger(__name__)

# What the served intent models answer for a message nothing fits (ml.tasks.intent).
OUT_OF_SCOPE = "out_of_scope"
# Bump when the reference's layout or meaning changes: older cached files are computed again.
REFERENCE_FORMAT = 3
# The held-out splits are scored by the champion once per version; more rows are sampled
# (evenly, deterministically) down to this many messages.
MAX_HELD_OUT = 5000

# (label, confidence, out_of_scope flag or None when the model has no detector) per message.
Answer = tuple[str | None, float | None, bool | None]
Predictor = Callable[[list[str]], list[Answer]]


def monitoring_folder(cfg: Settings, model: str) -> Location:
    return storage.join(cfg.reports, "monitoring", model)


def reference_location(cfg: Settings, model: str, version: int) -> Location:
    return storage.join(monitoring_folder(cfg, model), f"reference-v{version}.json")


def word_digest(word: str) -> str:
    return hashlib.blake2b(word.encode("utf-8"), digest_size=8).hexdigest()


def snapshot_of(version: VersionInfo) -> str:
    """The snapshot folder the version was trained on, from its lineage."""
    path = (version.lineage or {}).get("snapshot_path")
    if not path:
        raise ValueError(
            f"{version.model}:{version.version} has no snapshot_path in its lineage: "
            "monitoring compares against the training snapshot (retrain it with this intentflow)"
        )
    return str(path)


def reference_profile(
    cfg: Settings, version: VersionInfo, predict: Predictor | None = None
) -> dict[str, Any]:
    """The version's reference, from its cache when that matches the version's snapshot; else
    computed (scoring the held-out splits: `predict`, default the version itself as the
    service runs it) and cached."""
    where = reference_location(cfg, version.model, version.version)
    if storage.exists(where):
        cached = json.loads(storage.read_bytes(where))
        if (
            cached.get("format") == REFERENCE_FORMAT
            and cached.get("snapshot_hash") == version.data_snapshot_hash
        ):
            return cached
    profile = compute_reference(cfg, version, predict)
    storage.write_bytes(json.dumps(profile, sort_keys=True).encode("utf-8"), where)
    log.info("reference of %s:%s written to %s", version.model, version.version, where)
    return profile


def _split(snapshot: str, name: str) -> Any:
    import pyarrow as pa

    where = storage.join(storage.location(snapshot), f"{name}.parquet")
    if not storage.exists(where):
        return pa.table({"text": pa.array([], pa.string()), "intent": pa.array([], pa.string())})
    return storage.read_parquet(where, ["text", "intent"])


def compute_reference(
    cfg: Settings, version: VersionInfo, predict: Predictor | None = None
) -> dict[str, Any]:
    snapshot = snapshot_of(version)
    train = _split(snapshot, "train")
    if train.num_rows == 0:
        raise ValueError(
            f"snapshot {snapshot} of {version.model}:{version.version} has no train rows"
        )
    texts = [t or "" for t in train.column("text").to_pylist()]

    # Out-of-scope examples are expected to be answered `out_of_scope` (and count so by default).
    def truth(y: Any) -> str | None:
        return None if y is None else OUT_OF_SCOPE if y == cfg.oos_label else str(y)

    train_labels = Counter(truth(y) for y in train.column("intent").to_pylist() if y is not None)
    words = [tokens(t) for t in texts]
    lengths = [len(w) for w in words]
    vocabulary = {word_digest(w) for ws in words for w in ws}
    edges = length_edges(lengths)

    held_texts, held_labels = _held_out(snapshot)
    held_labels = [truth(y) for y in held_labels]
    answers = (predict or _served_predictor(cfg, version))(held_texts) if held_texts else []
    confidences = [c for _, c, _ in answers if c is not None]
    flags = [f for _, _, f in answers if f is not None]
    confusions = [
        (true, answer) for true, (answer, _, _) in zip(held_labels, answers, strict=True)
        if true is not None and answer is not None
    ]  # fmt: skip
    mix, size = expected_answer_mix(train_labels, confusions)
    held_words = word_sums(_unseen_by_message(held_texts, vocabulary))
    return {
        "format": REFERENCE_FORMAT,
        "model": version.model,
        "version": version.version,
        "snapshot_hash": version.data_snapshot_hash,
        "computed_at": datetime.now(UTC).isoformat(),
        "train_rows": train.num_rows,
        "held_out_messages": len(held_texts),
        # Expected answers, as counts of a sample of the size the estimate is worth.
        "label_counts": {k: q * size for k, q in mix.items()},
        "label_effective_n": size,
        "train_label_counts": dict(sorted(train_labels.items())),
        "length_edges": edges,
        "length_counts": binned(lengths, edges),
        "length_mean": sum(lengths) / len(lengths),
        "confidence_histogram": histogram(confidences),
        "confidence_n": len(confidences),
        # The held-out answers' 10th percentile of confidence, and the share at or under it.
        **low_confidence(confidences),
        "oos_rate": (sum(flags) / len(flags)) if flags else None,
        "oos_n": len(flags),
        "unseen_token_share": word_share(held_words) or 0.0,
        "unseen_word_sums": held_words,
        "vocabulary": sorted(vocabulary),
    }


def _held_out(snapshot: str) -> tuple[list[str], list[str | None]]:
    """Texts and true labels of the validation and test splits, sampled evenly down to
    MAX_HELD_OUT."""
    texts: list[str] = []
    labels: list[str | None] = []
    for name in ("validation", "test"):
        split = _split(snapshot, name)
        texts += [t or "" for t in split.column("text").to_pylist()]
        labels += [None if y is None else str(y) for y in split.column("intent").to_pylist()]
    if len(texts) > MAX_HELD_OUT:
        step = len(texts) / MAX_HELD_OUT
        picked = [int(i * step) for i in range(MAX_HELD_OUT)]
        texts, labels = [texts[i] for i in picked], [labels[i] for i in picked]
    return texts, labels


def _served_predictor(cfg: Settings, version: VersionInfo) -> Predictor:
    """The version loaded as `intentflow serve` loads it (INTENTFLOW_SERVE_RUNTIME), its answers
    read as the prediction log reads them."""
    from ml.serving.models import load_served
    from ml.serving.responses import api_prediction, log_fields
    from ml.threads import available_cpus

    runtime = (os.environ.get("INTENTFLOW_SERVE_RUNTIME") or "onnx-int8").strip().lower()
    served = load_served(version, cfg, runtime, threads=min(available_cpus(), 4))

    def predict(texts: list[str]) -> list[Answer]:
        out: list[Answer] = []
        for start in range(0, len(texts), 256):
            for p in served.predict(texts[start : start + 256], 1):
                fields = log_fields(api_prediction(p, "", 1))
                detector = p.get("oos_score") is not None
                out.append((fields["label"], fields["confidence"],
                            bool(p.get("out_of_scope")) if detector else None))  # fmt: skip
        return out

    return predict


def day_rows(cfg: Settings, model: str, day: str) -> Any:
    """The model's rows of the `predictions` table for `day` (the columns monitoring reads)."""
    import pyarrow.compute as pc

    from ml.serving.prediction_log import PredictionTable

    columns = ["model", "version", "task", "text", "label", "confidence", "scores"]
    rows = PredictionTable(cfg.predictions).read_day(day, columns)
    return rows.filter(pc.equal(rows.column("model"), model)) if rows.num_rows else rows


def day_profile(rows: Any, reference: dict[str, Any]) -> dict[str, Any]:
    """One day's counts from its prediction rows, binned as the reference is."""
    import pyarrow.compute as pc

    n = rows.num_rows
    answered = rows.column("label").to_pylist() if n else []
    labels = [str(x) for x in answered if x is not None]
    confidences = [c for c in rows.column("confidence").to_pylist() if c is not None] if n else []
    oos_flags: list[bool] = []
    if n:
        # A model with an out-of-scope detector logs its score in `scores` (ml.serving.responses).
        has_score = pc.is_valid(pc.map_lookup(rows.column("scores"), "oos_score", "first"))
        for label, scored in zip(answered, has_score.to_pylist(), strict=True):
            if scored:
                oos_flags.append(label == OUT_OF_SCOPE)
    texts = rows.column("text").to_pylist() if n else []
    by_message = _unseen_by_message(texts, set(reference["vocabulary"]))
    lengths = [w for _, w in by_message]
    unseen_words = word_sums(by_message)
    versions = Counter(rows.column("version").to_pylist()) if n else Counter()
    return {
        "predictions": n,
        "versions": {str(v): c for v, c in sorted(versions.items())},
        "label_counts": dict(sorted(Counter(labels).items())),
        "confidences": confidences,
        "oos_flags": oos_flags,
        "lengths": lengths,
        "length_counts": binned(lengths, reference["length_edges"]),
        "unseen_word_sums": unseen_words,
    }


def _unseen_by_message(texts: Sequence[str | None], vocabulary: set[str]) -> list[tuple[int, int]]:
    """(words the vocabulary lacks, words) of each message."""
    out = []
    for text in texts:
        words = tokens(text or "")
        out.append((sum(word_digest(w) not in vocabulary for w in words), len(words)))
    return out


def majority_version(profile: dict[str, Any]) -> int | None:
    """The version that answered most of the day's predictions (the newer on a tie)."""
    versions: Sequence[tuple[str, int]] = list(profile["versions"].items())
    if not versions:
        return None
    return int(max(versions, key=lambda kv: (kv[1], int(kv[0])))[0])
