"""Out-of-scope detection (ml.tasks.intent.out_of_scope): the scores, the threshold, the
metrics by hand; then the tiny BERT's artifact, predictions and evaluation, and the bad inputs
(no out-of-scope examples, one intent, a target of 0 or 1, an artifact from before)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.artifact.integrity import ArtifactIntegrityError, directory_sha256
from ml.config import ConfigError, settings
from ml.tasks.intent.evaluation import evaluate_model
from ml.tasks.intent.model import Classifier, predict
from ml.tasks.intent.out_of_scope import (
    OUT_OF_SCOPE,
    Detector,
    auroc,
    calibrate_threshold,
    energy_scores,
    fit_detector,
    fit_mahalanobis,
    fpr_at_tpr,
    held_out_oos,
    mahalanobis_scores,
    msp_scores,
    oos_metrics,
    raise_for_recall,
    shrunk_covariance,
)
from ml.tasks.intent.train import TrainConfig, fine_tune

MakeSnapshot = Callable[..., Path]
ALL = np.array([0, 1, 2])

# --- scores ------------------------------------------------------------------------------------


def test_msp_and_energy_by_hand() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    e2 = math.exp(2)
    assert msp_scores(logits, ALL) == pytest.approx([1 - e2 / (e2 + 2), 1 - 1 / 3])
    assert energy_scores(logits, ALL) == pytest.approx([-math.log(e2 + 2), -math.log(3)])
    # The head's out-of-scope class (column 2) takes probability but is no in-scope answer.
    assert msp_scores(np.array([[0.0, 0.0, 5.0]]), np.array([0, 1]))[0] == pytest.approx(
        1 - 1 / (2 + math.exp(5))
    )
    assert energy_scores(np.array([[0.0, 0.0, 5.0]]), np.array([0, 1]))[0] == pytest.approx(
        -math.log(2)
    )


def test_mahalanobis_is_the_distance_to_the_nearest_mean_under_the_shared_covariance() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    spread = np.diag([1.0, 1.0, 0.1])  # little variance on the third axis
    ids = np.repeat([0, 1, 2], 400)
    x = centres[ids] + rng.normal(size=(len(ids), 3)) @ spread
    whitening, means = fit_mahalanobis(x, ids, ALL)

    class_means = np.stack([x[ids == k].mean(axis=0) for k in ALL])
    covariance = shrunk_covariance(x - class_means[ids])
    inverse = np.linalg.inv(covariance)
    query = np.array([[1.0, 0.5, 0.2], [10.0, 0.0, 0.0]])
    expected = [min(float((q - m) @ inverse @ (q - m)) for m in class_means) for q in query]
    assert mahalanobis_scores(query, whitening, means) == pytest.approx(expected, rel=1e-6)
    # A step along the low-variance axis is far stranger than the same step along another.
    along = mahalanobis_scores(np.array([[0, 0, 1.0], [1.0, 0, 0]]), whitening, means)
    assert along[0] > 20 * along[1]


def test_shrinkage_inverts_a_covariance_from_fewer_rows_than_dimensions() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 32))
    ids = np.array([0, 0, 0, 1, 1, 1])
    whitening, means = fit_mahalanobis(x, ids, np.array([0, 1]))
    assert np.isfinite(whitening).all() and np.isfinite(means).all()
    scores = mahalanobis_scores(rng.normal(size=(3, 32)), whitening, means)
    assert np.isfinite(scores).all() and (scores > 0).all()
    # Constant features (a collapsed dimension) do not make it singular either.
    x[:, 5] = 1.0
    assert np.isfinite(fit_mahalanobis(x, ids, np.array([0, 1]))[0]).all()


# --- threshold ---------------------------------------------------------------------------------


def test_threshold_keeps_the_target_share_of_in_scope_rows() -> None:
    scores = np.array([4.0, 1.0, 3.0, 2.0])
    none = np.zeros(4, dtype=bool)
    assert calibrate_threshold(scores, none, 0.5) == (2.0, None)
    assert calibrate_threshold(scores, none, 0.75) == (3.0, None)
    assert calibrate_threshold(scores, none, 0.7) == (3.0, None)  # at least the target
    # Target 1 keeps every row: the highest score.
    assert calibrate_threshold(scores, none, 1.0) == (4.0, None)
    # The head's own out-of-scope class rejected two rows: 3 of 4 cannot be kept.
    rejected = np.array([True, False, True, False])
    assert calibrate_threshold(scores, rejected, 0.75) == (2.0, "head")
    assert calibrate_threshold(scores, np.ones(4, dtype=bool), 0.5)[0] is None
    assert calibrate_threshold(np.zeros(0), np.zeros(0, dtype=bool), 0.95) == (
        None,
        "no in-scope validation rows",
    )


@pytest.mark.parametrize("target", [0.0, -0.1, 1.01, float("nan")])
def test_a_target_outside_0_to_1_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 and <= 1"):
        calibrate_threshold(np.array([1.0]), np.array([False]), target)
    with pytest.raises(ValueError, match="oos_target"):
        TrainConfig(oos_target=target)


def test_oos_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="oos_method"):
        TrainConfig(oos_method="vibes")
    with pytest.raises(ValueError, match="oos_label"):
        TrainConfig(oos_label=" ")
    monkeypatch.setenv("INTENTFLOW_OOS_TARGET", "0")
    with pytest.raises(ConfigError, match="INTENTFLOW_OOS_TARGET=0.0 must be > 0 and <= 1"):
        settings()
    monkeypatch.setenv("INTENTFLOW_OOS_TARGET", "0.99")
    monkeypatch.setenv("INTENTFLOW_OOS_LABEL", "none_of_these")
    cfg = settings()
    assert (cfg.oos_target, cfg.oos_label) == (0.99, "none_of_these")
    # 1 is a target (keep every in-scope validation query), from the environment and in code.
    monkeypatch.setenv("INTENTFLOW_OOS_TARGET", "1")
    assert settings().oos_target == 1.0
    assert TrainConfig(oos_target=1).oos_target == 1


def test_labelled_out_of_scope_queries_raise_the_threshold_while_recall_holds() -> None:
    in_scope = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    oos = np.array([0.55, 0.75, 0.85, 0.95, 1.5])
    none = np.zeros(5, dtype=bool)
    # Recall 0.8 needs 4 of 5 above the threshold: the 4th strangest is 0.75, so the highest
    # in-scope score below it, 0.7.
    assert raise_for_recall(0.5, in_scope, oos, none, 0.8) == 0.7
    # Never below the in-scope target's threshold, even when recall would want it.
    assert raise_for_recall(0.9, in_scope, oos, none, 0.8) == 0.9
    # Rows the head rejects count as caught: 2 of them, so 2 more by score: below 0.95.
    head = np.array([True, True, False, False, False])
    assert raise_for_recall(0.5, in_scope, oos, head, 0.8) == 0.9
    # The head alone reaches the target: every in-scope row can be kept.
    assert raise_for_recall(0.5, in_scope, oos, np.ones(5, dtype=bool), 0.8) == 1.0
    # A target of 1 keeps the least strange out-of-scope query out.
    assert raise_for_recall(0.2, in_scope, oos, none, 1.0) == 0.5


def test_fit_detector_raises_the_threshold_only_with_enough_labelled_queries() -> None:
    rng = np.random.default_rng(4)
    inside = rng.normal(0, 1, size=(200, 3)) + np.array([6.0, 0.0, 0.0])
    strange = rng.normal(0, 1, size=(20, 3))
    logits = np.vstack([inside, strange])
    truth = ["a"] * 200 + ["oos"] * 20
    labels = ["a", "b", "c"]
    floor, off = fit_detector("energy", 0.9, "oos", labels, 1.0, (logits, None, truth))
    assert off["rule"] == "in_scope_target" and off["recall_target"] is None
    _, raised = fit_detector("energy", 0.9, "oos", labels, 1.0, (logits, None, truth), None, 0.8)
    assert raised["rule"] == "recall_target"
    assert raised["threshold"] > raised["in_scope_threshold"] == off["threshold"]
    assert raised["validation"]["oos_recall"] >= 0.8
    assert raised["validation"]["in_scope_kept"] > off["validation"]["in_scope_kept"]
    # Nine labelled queries are too few to move it.
    few = (np.vstack([inside, strange[:9]]), None, truth[:209])
    _, kept = fit_detector("energy", 0.9, "oos", labels, 1.0, few, None, 0.8)
    assert kept["rule"] == "in_scope_target"


def test_half_the_labelled_train_rows_are_held_out_the_same_in_any_order() -> None:
    texts = [f"query {i}" for i in range(30)] + ["lost card"] * 5
    labels = ["oos"] * 30 + ["lost_card"] * 5
    mask = held_out_oos(texts, labels, "oos")
    assert mask.sum() == 15 and not mask[30:].any()
    order = list(reversed(range(35)))
    again = held_out_oos([texts[i] for i in order], [labels[i] for i in order], "oos")
    assert {texts[i] for i in np.flatnonzero(mask)} == {
        texts[order[i]] for i in np.flatnonzero(again)
    }
    # Fewer than 20: none held out (too few to both train and calibrate on).
    assert not held_out_oos(texts[11:], labels[11:], "oos").any()


def test_the_recall_target_is_a_share_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().oos_recall_target == 0.8
    monkeypatch.setenv("INTENTFLOW_OOS_RECALL_TARGET", "off")
    assert settings().oos_recall_target is None
    monkeypatch.setenv("INTENTFLOW_OOS_RECALL_TARGET", "1.5")
    with pytest.raises(ConfigError, match="INTENTFLOW_OOS_RECALL_TARGET=1.5 must be > 0 and <= 1"):
        settings()
    with pytest.raises(ValueError, match="oos_recall_target"):
        TrainConfig(oos_recall_target=0)
    assert TrainConfig(oos_recall_target=None).oos_recall_target is None


# --- metrics -----------------------------------------------------------------------------------


def test_auroc_and_fpr_by_hand() -> None:
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right.
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    assert auroc(scores, positive) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)  # a tie
    assert auroc(np.array([np.inf, 1.0, 2.0]), np.array([True, False, False])) == 1.0
    assert math.isnan(auroc(scores, np.zeros(4, dtype=bool)))
    # 20 in-scope scores 1..20: 95% kept below 19; out of scope 5 and 19 slip through.
    inside = np.arange(1.0, 21.0)
    outside = np.array([5.0, 19.0, 20.0, 30.0])
    both = np.concatenate([inside, outside])
    flags = np.r_[np.zeros(20, dtype=bool), np.ones(4, dtype=bool)]
    assert fpr_at_tpr(both, flags) == pytest.approx(0.5)
    assert math.isnan(fpr_at_tpr(inside, np.zeros(20, dtype=bool)))


def _msp_detector(threshold: float | None, head_class: int | None = None) -> Detector:
    in_scope = np.array([i for i in range(3) if i != head_class])
    return Detector("msp", threshold, 0.95, "oos", in_scope, head_class)


def test_decisions_and_metrics_by_hand() -> None:
    labels = ["a", "b", "oos"]
    detector = _msp_detector(0.5, head_class=2)
    logits = np.array(
        [
            [5.0, 0.0, 0.0],  # a, sure: kept
            [0.0, 5.0, 0.0],  # b, sure, but truly a: kept, wrong
            [0.1, 0.0, 0.0],  # a, unsure (score > 0.5): out of scope, truly a
            [0.0, 0.0, 5.0],  # the head's oos class wins: out of scope, truly oos
            [4.0, 0.0, 0.0],  # a, sure, truly out of scope: missed
        ]
    )
    y_true = ["a", "a", "a", "oos", OUT_OF_SCOPE]
    decisions = detector.decide(logits)
    assert decisions.out_of_scope.tolist() == [False, False, True, True, False]
    assert decisions.head_rejected.tolist() == [False, False, False, True, False]
    assert [labels[i] for i in decisions.best] == ["a", "b", "a", "a", "a"]

    m = oos_metrics(detector, decisions, y_true, labels)
    assert m["oos_n"] == 2
    assert m["in_scope_accuracy"] == pytest.approx(1 / 3)  # only row 0 right and kept
    assert m["in_scope_kept"] == pytest.approx(2 / 3)
    assert m["oos_recall"] == pytest.approx(1 / 2)
    assert m["oos_precision"] == pytest.approx(1 / 2)
    # Ranking (head-rejected first): row 3 (inf) > row 2 > row 4 > rows 0 and 1 (tied): the
    # out-of-scope rows 3 and 4 beat 3 + 2 of the 6 in-scope pairs.
    assert m["oos_auroc"] == pytest.approx(5 / 6)
    assert 0.0 <= m["oos_fpr_at_95_tpr"] <= 1.0


def test_without_out_of_scope_rows_only_the_in_scope_figures_exist() -> None:
    detector = _msp_detector(0.5)
    logits = np.array([[5.0, 0.0, 0.0], [0.0, 0.1, 0.0]])
    m = oos_metrics(detector, detector.decide(logits), ["a", "b"], ["a", "b", "c"])
    assert m == {"oos_n": 0, "in_scope_accuracy": 0.5, "in_scope_kept": 0.5}
    # No threshold (nothing to calibrate on): nothing is out of scope by score.
    assert not _msp_detector(None).decide(logits).out_of_scope.any()


def test_fit_detector_target_1_keeps_every_validation_query() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(50, 3))
    y_true = ["a"] * 50
    detector, record = fit_detector(
        "energy", 1.0, "oos", ["a", "b", "c"], 1.0, (logits, None, y_true)
    )
    assert record["threshold"] == pytest.approx(energy_scores(logits, ALL).max())
    assert record["validation"]["in_scope_kept"] == 1.0
    assert detector.threshold == record["threshold"]
    # A validation row of an intent the model never saw is out of scope for it: not kept.
    strange = np.vstack([logits, [[-50.0, -50.0, -50.0]]])
    _, with_unknown = fit_detector(
        "energy", 1.0, "oos", ["a", "b", "c"], 1.0, (strange, None, [*y_true, "new_intent"])
    )
    assert with_unknown["threshold"] == record["threshold"]
    assert with_unknown["validation"]["in_scope_kept"] == pytest.approx(50 / 51)
    empty, record = fit_detector("msp", 0.95, "oos", ["a", "b"], 1.0, (np.zeros((0, 2)), None, []))
    assert empty.threshold is None and record["limited_by"] == "no in-scope validation rows"


# --- the tiny BERT: artifact, predict, evaluate ------------------------------------------------


def test_the_threshold_is_inside_the_artifact_under_its_sha256(
    tiny_artifact: dict[str, Any], tmp_path: Path
) -> None:
    artifact = Path(tiny_artifact["artifact_dir"])
    record = json.loads((artifact / "out_of_scope.json").read_text())
    assert record["method"] == "energy" and record["target"] == 0.98  # the defaults
    assert math.isfinite(record["threshold"]) and record["head_class"] is None
    # 0.98 of the validation rows of known intents (the unseen `other` ones may go too).
    assert record["validation"]["in_scope_kept"] >= 0.98 * 36 / 48
    assert not (artifact / "out_of_scope.safetensors").exists()  # mahalanobis only
    assert directory_sha256(artifact) == tiny_artifact["artifact_sha256"]
    assert "## Out of scope" in (artifact / "README.md").read_text()

    copy = Path(shutil.copytree(artifact, tmp_path / "copy"))
    (copy / "out_of_scope.json").write_text(json.dumps({**record, "threshold": 1e9}))
    with pytest.raises(ArtifactIntegrityError, match="expected sha256"):
        Classifier.load(copy, tiny_artifact["artifact_sha256"])


@pytest.fixture
def artifact_copy(tiny_artifact: dict[str, Any], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_artifact["artifact_dir"], tmp_path / "copy"))


@pytest.fixture(scope="module")
def mahalanobis_artifact(
    tiny_train_config: TrainConfig, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The tiny BERT with the mahalanobis score: its statistics beside the threshold."""
    from conftest import write_snapshot

    root = tmp_path_factory.mktemp("mahalanobis")
    snapshot = write_snapshot(root / "snapshot", n_per_label=16, seed=3)
    config = dataclasses.replace(tiny_train_config, epochs=3, oos_method="mahalanobis")
    return {**fine_tune(snapshot, root / "model", config), "snapshot_dir": snapshot}


def test_mahalanobis_statistics_are_inside_the_artifact_and_score_predictions(
    mahalanobis_artifact: dict[str, Any], tmp_path: Path
) -> None:
    artifact = Path(mahalanobis_artifact["artifact_dir"])
    record = json.loads((artifact / "out_of_scope.json").read_text())
    assert record["method"] == "mahalanobis" and math.isfinite(record["threshold"])
    assert (artifact / "out_of_scope.safetensors").is_file()
    assert directory_sha256(artifact) == mahalanobis_artifact["artifact_sha256"]
    detector = Classifier.load(artifact, mahalanobis_artifact["artifact_sha256"]).detector
    assert detector is not None and detector.needs_features
    assert detector.means is not None and detector.means.shape[0] == 3
    [p] = predict(artifact, ["lost card"])
    assert p["oos_score"] >= 0 and p["oos_threshold"] == round(record["threshold"], 4)
    m = evaluate_model(artifact, Path(mahalanobis_artifact["snapshot_dir"]))
    assert m["oos_n"] == 0 and 0 <= m["in_scope_accuracy"] <= 1

    copy = Path(shutil.copytree(artifact, tmp_path / "copy"))
    from safetensors.numpy import save_file

    save_file(
        {"whitening": np.eye(4, dtype=np.float32), "means": np.zeros((2, 4), np.float32)},
        str(copy / "out_of_scope.safetensors"),
    )
    with pytest.raises(ArtifactIntegrityError, match="in-scope classes"):
        Classifier.load(copy)
    (copy / "out_of_scope.safetensors").unlink()
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        Classifier.load(copy)


def _set_threshold(artifact: Path, threshold: float) -> None:
    path = artifact / "out_of_scope.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "threshold": threshold}))


def test_predict_answers_out_of_scope_with_the_best_in_scope_label_beside_it(
    artifact_copy: Path,
) -> None:
    labels = json.loads((artifact_copy / "labels.json").read_text())
    texts = ["lost card", "refund request please"]
    kept = predict(artifact_copy, texts, top_k=2)
    assert set(kept[0]) == {
        "text",
        "intent",
        "probability",
        "in_scope_intent",
        "out_of_scope",
        "oos_score",
        "oos_threshold",
        "top_k",
    }
    _set_threshold(artifact_copy, -1e9)  # every score is above it
    said = predict(artifact_copy, texts, top_k=2)
    for before, after in zip(kept, said, strict=True):
        assert after["intent"] == OUT_OF_SCOPE and after["out_of_scope"] is True
        assert after["in_scope_intent"] in labels
        assert after["in_scope_intent"] == before["in_scope_intent"]
        assert after["probability"] == before["probability"]
        assert after["oos_score"] == before["oos_score"] > -1e9
        assert after["oos_threshold"] == -1e9
    # The Python API answers alike: out_of_scope, its score and the best intent beside it.
    api = Classifier.load(artifact_copy).predict(texts)
    assert [p.label for p in api] == [OUT_OF_SCOPE] * 2
    assert [p.in_scope_label for p in api] == [p["in_scope_intent"] for p in said]
    assert [p.oos_score for p in api] == pytest.approx([p["oos_score"] for p in said], abs=1e-4)
    _set_threshold(artifact_copy, 1e12)
    assert not any(p["out_of_scope"] for p in predict(artifact_copy, texts))
    assert [p.label for p in Classifier.load(artifact_copy).predict(texts)] == [
        p["in_scope_intent"] for p in kept
    ]


def test_an_artifact_from_before_out_of_scope_detection_loads_predicts_and_evaluates(
    artifact_copy: Path, tiny_artifact: dict[str, Any]
) -> None:
    (artifact_copy / "out_of_scope.json").unlink()
    assert Classifier.load(artifact_copy, directory_sha256(artifact_copy)).detector is None
    [p] = predict(artifact_copy, ["lost card"])
    assert p["out_of_scope"] is False and p["oos_score"] is None and p["oos_threshold"] is None
    assert p["intent"] == p["in_scope_intent"]
    [api] = Classifier.load(artifact_copy).predict(["lost card"])
    assert (api.label, api.in_scope_label, api.oos_score) == (p["intent"], p["intent"], None)
    m = evaluate_model(artifact_copy, Path(tiny_artifact["snapshot_dir"]))
    assert "oos_n" not in m and "in_scope_accuracy" not in m and m["n"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: {**r, "method": "astrology"}, "unknown method"),
        (lambda r: {**r, "target": 0}, "'target' must be a number in"),
        (lambda r: {**r, "threshold": "high"}, "'threshold' must be a finite number"),
        (lambda r: {k: v for k, v in r.items() if k != "threshold"}, "unreadable"),
    ],
)
def test_an_unusable_detector_file_is_refused(
    artifact_copy: Path, change: Callable[[dict], dict], message: str
) -> None:
    path = artifact_copy / "out_of_scope.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(ArtifactIntegrityError, match=message):
        Classifier.load(artifact_copy)


# --- labelled out-of-scope examples and bad inputs ---------------------------------------------


def _add_oos_rows(snapshot: Path, label: str = "oos", per_split: int = 12) -> Path:
    """Out-of-scope rows (words no intent uses) added to every split of a snapshot."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(5)
    words = "weather tomorrow song play joke tell movie recipe pasta flight book".split()
    for split in ("train", "validation", "test"):
        path = snapshot / f"{split}.parquet"
        table = pq.read_table(path)
        rows = [
            {
                "conversation_id": f"oos-{split}-{i}",
                "text": " ".join(rng.sample(words, 4)),
                "intent": label,
            }
            for i in range(per_split if split == "train" else per_split // 2)
        ]
        extra = pa.Table.from_pylist(rows).select(table.column_names).cast(table.schema)
        pq.write_table(pa.concat_tables([table, extra]), path)
    return snapshot


def test_labelled_out_of_scope_examples_train_the_heads_own_class(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = _add_oos_rows(make_snapshot(n_per_label=12))
    out = tmp_path / "model"
    result = fine_tune(snapshot, out, tiny_train_config)
    assert "oos" in result["labels"]
    record = json.loads((out / "out_of_scope.json").read_text())
    assert record["head_class"] == "oos"
    assert record["validation"]["oos_n"] == 6 and "oos_recall" in record["validation"]
    assert "trained as one more class" in (out / "README.md").read_text()

    detector = Classifier.load(out).detector
    assert detector is not None and detector.head_class == result["labels"].index("oos")
    preds = predict(out, ["weather song joke movie", "lost card please"], top_k=5)
    for p in preds:
        assert p["in_scope_intent"] != "oos"
        assert "oos" not in [t["intent"] for t in p["top_k"]]
        assert p["intent"] in (*result["labels"], OUT_OF_SCOPE) and p["intent"] != "oos"
    m = evaluate_model(out, snapshot, result["artifact_sha256"])
    assert m["oos_n"] == 6
    assert {"oos_recall", "oos_precision", "oos_auroc", "oos_fpr_at_95_tpr"} <= set(m)
    assert {"in_scope_accuracy", "in_scope_kept"} <= set(m)
    assert m["oos_auroc"] > 0.5  # the tiny model tells them apart better than chance


def test_part_of_the_labelled_train_rows_is_held_out_to_calibrate_on(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    snapshot = _add_oos_rows(make_snapshot(n_per_label=12), per_split=24)
    out = tmp_path / "model"
    fine_tune(snapshot, out, tiny_train_config)
    record = json.loads((out / "out_of_scope.json").read_text())
    assert record["threshold"] is not None, record["limited_by"]
    # 12 of train's 24 moved to validation, beside validation's own 12.
    assert record["held_out_from_train"] == 12
    assert record["validation"]["oos_n"] == 24
    assert record["recall_target"] == 0.8
    assert record["rule"] in ("in_scope_target", "recall_target")
    assert record["threshold"] >= record["in_scope_threshold"]
    assert "12 of them were held out of training" in (out / "README.md").read_text()


def test_one_intent_trains_only_with_out_of_scope_examples(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    config = dataclasses.replace(tiny_train_config, epochs=1)
    alone = make_snapshot(labels=["lost_card"])
    with pytest.raises(ValueError, match="at least 2 .*out-of-scope examples labelled 'oos'"):
        fine_tune(alone, tmp_path / "a", config)
    # With out-of-scope examples under a configured label: a one-intent detector.
    with_oos = _add_oos_rows(make_snapshot(labels=["lost_card"]), label="chit_chat")
    result = fine_tune(with_oos, tmp_path / "b", dataclasses.replace(config, oos_label="chit_chat"))
    assert result["labels"] == ["chit_chat", "lost_card"]
    [p] = predict(tmp_path / "b", ["lost card"])
    assert p["in_scope_intent"] == "lost_card"


def test_only_out_of_scope_examples_or_the_answer_label_as_an_intent_are_refused(
    make_snapshot: MakeSnapshot, tiny_train_config: TrainConfig, tmp_path: Path
) -> None:
    only = make_snapshot(labels=["oos"])
    with pytest.raises(ValueError, match="only out-of-scope examples"):
        fine_tune(only, tmp_path / "a", tiny_train_config)
    clash = make_snapshot(labels=["lost_card", OUT_OF_SCOPE])
    with pytest.raises(ValueError, match="has the label 'out_of_scope'"):
        fine_tune(clash, tmp_path / "b", tiny_train_config)


def test_the_retrain_passes_the_configured_oos_settings_to_training(
    intentflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INTENTFLOW_OOS_* are the deployment's defaults; a configured model's params win."""
    from ml.retrain.specs import ModelSpec
    from ml.retrain.steps import train_step

    seen: dict[str, Any] = {}

    def fake_fine_tune(snapshot_dir: Path, out_dir: Path, config: dict, *_: Any, **__: Any) -> dict:
        seen.update(TrainConfig.from_params(config).__dict__)
        raise RuntimeError("stop here")

    monkeypatch.setattr("ml.tasks.intent.fine_tune", fake_fine_tune)
    monkeypatch.setenv("INTENTFLOW_OOS_TARGET", "0.9")
    monkeypatch.setenv("INTENTFLOW_OOS_LABEL", "other")
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    spec = ModelSpec(name="intent", task="intent", source="x.csv", params={"oos_target": 0.99})
    with pytest.raises(RuntimeError, match="stop here"):
        train_step({"path": str(snapshot), "hash": "h"}, {}, "run-1", model=spec)
    assert (seen["oos_target"], seen["oos_label"]) == (0.99, "other")


# --- the real MiniLM on CLINC150 ---------------------------------------------------------------


@pytest.mark.slow
def test_minilm_on_clinc150_answers_unseen_out_of_scope_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 CLINC150 intents and its 100 oos_train queries, 1 epoch of the real MiniLM-L6 with
    the shipped out-of-scope defaults; scored on the official `val` of those intents and the
    unseen `oos_val` (bench/oos.py's splits and --quick sizes; the full figures are its own)."""
    from ci import dataset, datasets_dir

    dataset("clinc150/data_full_train_val.json")
    monkeypatch.setenv("INTENTFLOW_SHARED", str(datasets_dir().parent))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3] / "bench"))
    import oos as bench  # bench/oos.py

    parts = bench.splits(quick=True)
    parts["train"] += parts["oos_train"]
    snapshot = bench.write_snapshot(tmp_path / "snapshot", parts)
    result = fine_tune(snapshot, tmp_path / "model", TrainConfig(epochs=1))
    m = evaluate_model(tmp_path / "model", snapshot, result["artifact_sha256"])
    assert m["oos_n"] == 100
    assert m["oos_auroc"] >= 0.95
    assert m["oos_recall"] >= 0.75 and m["in_scope_accuracy"] >= 0.9
