"""Which epoch to keep: the rules compared on the feedback loop's retrain, seed by seed.

The retrain of bench/feedback_loop.py keeps one of its epochs by a validation figure measured
on a couple of hundred rows. This bench retrains from that run's snapshot with several seeds,
keeping every epoch's checkpoint, and asks what each rule would have kept and how that epoch
does on the held-back shifted day (1,000 conversations the retrain never saw):

    macro_f1   the highest validation macro-F1 (ties: the earlier epoch, as the Trainer does)
    loss       the lowest validation cross-entropy (the Trainer's default)
    accuracy   the highest validation accuracy
    last       the last epoch

Every model here answers by its most probable label (no temperature, no out-of-scope
detector: the epochs' checkpoints have neither), the champion too, so the rules are compared
on the same footing; `intentflow evaluate` (the feedback loop's figures) also answers
out_of_scope. Old intents are judged as the promotion policy judges them: those with at least
its fewest examples on the held-back day, by their F1 drop from the champion's.

    python bench/feedback_loop.py --work /tmp/fl        # once: the lake, champion, snapshot
    python bench/epoch_choice.py --work /tmp/fl --seeds 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from feedback_loop import _compare  # noqa: E402 (the bench folder is not a package)

RULES = ("macro_f1", "loss", "accuracy", "last")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    work = Path(args.work).absolute()
    os.environ["INTENTFLOW_HOME"] = str(work / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("INTENTFLOW_PROGRESS", "off")
    from ml.config import settings
    from ml.registry.store import Registry

    with Registry(settings().registry_url) as registry:
        versions = sorted(registry.list_versions("intent"), key=lambda v: v.version)
    champion, retrain = versions[0], versions[-1]
    snapshot = Path(retrain.lineage["snapshot_path"])
    if not snapshot.is_dir():
        raise SystemExit(f"no snapshot at {snapshot}: run bench/feedback_loop.py --work first")
    heldout = [json.loads(line) for line in (work / "heldout.jsonl").read_text().splitlines()]
    texts, truth = [h["text"] for h in heldout], [h["label"] for h in heldout]
    policy = (settings().promotion_max_class_regression, settings().promotion_min_class_support)
    base = _scores(_model(_local_artifact(champion)), texts, truth)
    print(f"champion v{champion.version}, retrain snapshot {snapshot}, held-back {len(texts)}")
    out = work / "epoch_choice"
    results: dict[str, Any] = {"champion": _brief(base), "seeds": []}
    for seed in args.seeds:
        started = time.perf_counter()
        epochs = _train(snapshot, out / f"seed-{seed}", seed, args)
        for e in epochs:
            e["heldout"] = _judge(base, _scores(e.pop("model"), texts, truth), policy)
        kept = {rule: _choose(epochs, rule) for rule in RULES}
        row = {"seed": seed, "epochs": epochs, "kept": kept}
        row["seconds"] = round(time.perf_counter() - started)
        results["seeds"].append(row)
        _print_seed(row)
        shutil.rmtree(out / f"seed-{seed}", ignore_errors=True)
    _print_summary(results["seeds"])
    path = work / "epoch_choice.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results: {path}")
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="a bench/feedback_loop.py working folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--epochs", type=int, default=4, help="as the feedback loop trains")
    p.add_argument("--max-length", type=int, default=64, help="as the feedback loop trains")
    return p.parse_args(argv)


def _local_artifact(version: Any) -> Path:
    path = Path(version.artifact_uri.removeprefix("file://"))
    if not path.is_dir():
        raise SystemExit(f"artifact {version.artifact_uri} is not a local folder")
    return path


def _train(snapshot: Path, folder: Path, seed: int, args: argparse.Namespace) -> list[dict]:
    """A retrain from the snapshot keeping every epoch's checkpoint; each epoch's model with
    its validation figures, as the training recorded them (metrics.json's history)."""
    from ml.tasks.intent.train import TrainConfig, fine_tune

    shutil.rmtree(folder, ignore_errors=True)
    config = TrainConfig(
        epochs=args.epochs,
        max_length=args.max_length,
        seed=seed,
        early_stopping_patience=None,  # every rule sees every epoch
        trainer_args={"save_total_limit": None},
    )
    fine_tune(snapshot, folder / "artifact", config, checkpoint_dir=folder / "checkpoints")
    history = json.loads((folder / "artifact" / "metrics.json").read_text())["history"]
    found = sorted(
        (folder / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
    )
    return [
        {
            "epoch": h["epoch"],
            "validation": {k: h[k] for k in ("macro_f1", "accuracy", "loss", "n")},
            "model": _model(checkpoint, tokenizer_from=folder / "artifact"),
        }
        for h, checkpoint in zip(history, found, strict=True)
    ]


def _model(path: Path, tokenizer_from: Path | None = None) -> tuple[Any, Any, int]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.tasks.intent.model import FALLBACK_MAX_LENGTH

    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from or path)
    config = (tokenizer_from or path) / "train_config.json"
    max_length = (
        json.loads(config.read_text())["max_length"] if config.is_file() else FALLBACK_MAX_LENGTH
    )
    return model, tokenizer, max_length


def _logits(model: tuple[Any, Any, int], texts: list[str]) -> tuple[np.ndarray, list[str]]:
    from ml.tasks.intent.model import batched_logits

    net, tokenizer, max_length = model
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    examples = [{k: encoded[k][i] for k in encoded} for i in range(len(texts))]
    labels = [net.config.id2label[i] for i in range(net.config.num_labels)]
    return batched_logits(net, tokenizer, examples, 64), labels


def _scores(model: tuple[Any, Any, int], texts: list[str], truth: list[str]) -> dict[str, Any]:
    from ml.tasks.intent.metrics import classification_metrics

    logits, labels = _logits(model, texts)
    return classification_metrics(truth, [labels[i] for i in logits.argmax(axis=1)], labels)


def _judge(
    base: dict[str, Any], after: dict[str, Any], policy: tuple[float, int]
) -> dict[str, Any]:
    """The held-back day judged as bench/feedback_loop.py judges it (the policy's way)."""
    h = _compare(base, after, policy)
    return {
        **_brief(after),
        "new_intent_recall": round(h["new_intent_recall"] or 0.0, 4),
        "worst_old": h["worst_old_class"],
        "worst_old_f1_drop": h["worst_old_class_f1_drop"],
        "within_policy": h["old_classes_within_policy"],
    }


def _brief(m: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}


def _choose(epochs: list[dict], rule: str) -> int:
    if rule == "last":
        return epochs[-1]["epoch"]
    sign = -1 if rule == "loss" else 1
    # max over (score, -epoch): ties go to the earlier epoch, as the Trainer's strict `>`.
    return max(epochs, key=lambda e: (sign * e["validation"][rule], -e["epoch"]))["epoch"]


def _print_seed(row: dict[str, Any]) -> None:
    print(f"\nseed {row['seed']} ({row['seconds']} s)")
    print("epoch  val F1  val acc  val loss | held-back acc  F1  new recall  worst old (drop)")
    for e in row["epochs"]:
        v, h = e["validation"], e["heldout"]
        print(
            f"{e['epoch']:>5}  {v['macro_f1']:.3f}   {v['accuracy']:.3f}   {v['loss']:.3f}   | "
            f"{h['accuracy']:.3f}  {h['macro_f1']:.3f}  {h['new_intent_recall']:.3f}  "
            f"{h['worst_old']} ({h['worst_old_f1_drop']:+.3f}{'' if h['within_policy'] else ' !'})"
        )
    print("kept: " + ", ".join(f"{rule} {epoch}" for rule, epoch in row["kept"].items()))


def _print_summary(rows: list[dict[str, Any]]) -> None:
    print("\nrule      kept epochs   held-back acc (mean)  F1 (mean)  worst drop (max)  within")
    for rule in RULES:
        picked = [next(e for e in r["epochs"] if e["epoch"] == r["kept"][rule]) for r in rows]
        h = [e["heldout"] for e in picked]
        print(
            f"{rule:<9} {','.join(str(e['epoch']) for e in picked):<13} "
            f"{np.mean([x['accuracy'] for x in h]):.4f}                "
            f"{np.mean([x['macro_f1'] for x in h]):.4f}     "
            f"{max(x['worst_old_f1_drop'] for x in h):+.3f}            "
            f"{sum(x['within_policy'] for x in h)}/{len(h)}"
        )


if __name__ == "__main__":
    main()
