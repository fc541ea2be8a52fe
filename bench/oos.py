"""Out-of-scope detection on CLINC150: the plain max-softmax threshold against the shipped
method, each with and without the 100 labelled out-of-scope training examples, in one run.

    python bench/oos.py                  # the shipped training defaults (MiniLM-L6)
    python bench/oos.py --epochs 3       # fewer epochs on a slow machine
    python bench/oos.py --quick          # a smoke run: 10 intents, 1 epoch, same code path
    python bench/oos.py --only with      # one configuration: with the oos_train examples

Data: ../shared/datasets/clinc150 (Larson et al. 2019, CC BY 3.0): `train` (150 intents x 100),
`val` (x 20), `oos_train` and `oos_val` (100 out-of-scope queries each). The official test
split is held out of that folder. Our splits:

- test = the official `val` (3,000 in-scope) + `oos_val` (100 out-of-scope): scored once, at
  the end; nothing is chosen or calibrated on it;
- validation = 10 queries per intent of the official `train` (by sha256 of the row number):
  the epoch kept, the temperature and every threshold are fitted there, on in-scope rows only;
- train = the other 90 per intent (13,500), plus `oos_train` labelled `oos` in the "with
  oos_train" configuration, of which `fine_tune` holds half out into validation (as it does
  for any snapshot: ml.tasks.intent.out_of_scope.held_out_oos), where the recall rule
  (TrainConfig.oos_recall_target) may raise the threshold; the bench sweeps that target.
- dev = validation's in-scope queries against `oos_train`, scored by the model trained
  without `oos_train` (so those queries are unseen): where the method was chosen, never test.

Each configuration fine-tunes once through `fine_tune` (what `intentflow train` runs) into a
cache folder keyed by its data and settings; every method then scores the same model's logits
and encoder features (also cached), so methods differ in the score alone. A method's threshold
is calibrated on validation to each target (the share of in-scope validation queries kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
CLINC = SHARED / "clinc150" / "data_full_train_val.json"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

VALIDATION_PER_INTENT = 10
TARGETS = (0.95, 0.97, 0.98, 0.99)
# Recall targets swept for the shipped method at the shipped in-scope target (None: off).
RECALL_TARGETS = (None, 0.75, 0.80, 0.85, 0.90)
# The plain baseline, then the shipped method (and energy, the third candidate).
METHODS = ("msp", "energy", "mahalanobis")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _row_key(row: int) -> str:
    """Orders an intent's official train rows at random, the same on every run."""
    return hashlib.sha256(f"clinc150-train-{row}".encode()).hexdigest()


def splits(quick: bool) -> dict[str, list[tuple[str, str]]]:
    """(text, label) rows of train, validation, test and oos_train (module docstring)."""
    data = json.loads(CLINC.read_text(encoding="utf-8"))
    intents = sorted({label for _, label in data["train"]})
    if quick:
        intents = intents[:10]
    keep = set(intents)
    by_intent: dict[str, list[tuple[int, str]]] = {}
    for row, (text, label) in enumerate(data["train"]):
        if label in keep:
            by_intent.setdefault(label, []).append((row, text))
    train, validation = [], []
    for label, rows in by_intent.items():
        # The hash orders each intent's rows; its first ten are validation.
        ordered = sorted(rows, key=lambda r: _row_key(r[0]))
        validation += [(t, label) for _, t in ordered[:VALIDATION_PER_INTENT]]
        train += [(t, label) for _, t in ordered[VALIDATION_PER_INTENT:]]
    test = [(t, y) for t, y in data["val"] if y in keep] + [(t, "oos") for t, _ in data["oos_val"]]
    oos_train = [(t, "oos") for t, _ in data["oos_train"]]
    return {"train": train, "validation": validation, "test": test, "oos_train": oos_train}


def write_snapshot(folder: Path, parts: dict[str, list[tuple[str, str]]]) -> Path:
    """A snapshot folder as fine_tune reads it (train/validation/test parquet + snapshot.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for split in ("train", "validation", "test"):
        rows = parts[split]
        table = pa.table(
            {
                "conversation_id": [f"{split}-{i}" for i in range(len(rows))],
                "text": [t for t, _ in rows],
                "intent": [y for _, y in rows],
            }
        )
        pq.write_table(table, folder / f"{split}.parquet")
        digest.update(json.dumps(rows).encode())
    counts = {split: len(parts[split]) for split in ("train", "validation", "test")}
    snapshot = {"hash": digest.hexdigest(), "window": None, "counts": counts, "path": str(folder)}
    (folder / "snapshot.json").write_text(json.dumps(snapshot))
    return folder


def as_fine_tune_splits(
    parts: dict[str, list[tuple[str, str]]], oos_label: str
) -> dict[str, list[tuple[str, str]]]:
    """The splits as fine_tune trains and calibrates on them: part of train's labelled
    out-of-scope rows held out into validation."""
    from ml.tasks.intent.out_of_scope import held_out_oos

    train = parts["train"]
    move = held_out_oos([t for t, _ in train], [y for _, y in train], oos_label)
    return {
        **parts,
        "train": [row for row, m in zip(train, move, strict=True) if not m],
        "validation": parts["validation"] + [row for row, m in zip(train, move, strict=True) if m],
    }


def trained_model(
    cache: Path, name: str, parts: dict[str, list[tuple[str, str]]], config: Any
) -> tuple[Path, dict[str, Any]]:
    """The fine-tuned artifact of one configuration: from the cache when this data and these
    settings were trained before, else trained now (its time is recorded beside it)."""
    from ml.tasks.intent.train import fine_tune

    settings = {k: v for k, v in asdict(config).items() if k != "num_threads"}
    key = hashlib.sha256(
        json.dumps([parts["train"], parts["validation"], settings], default=str).encode()
    ).hexdigest()[:16]
    folder = cache / f"{name}-{key}"
    model, timing = folder / "model", folder / "timing.json"
    if timing.is_file():
        return model, {**json.loads(timing.read_text()), "cached": True}
    snapshot = write_snapshot(folder / "snapshot", parts)
    cpu, started = _cpu_seconds(), time.perf_counter()
    result = fine_tune(snapshot, model, config)
    record = {
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "threads": result["config"]["num_threads"],
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "validation_accuracy": result["validation"]["accuracy"],
        "loadavg_at_end": os.getloadavg(),
    }
    timing.write_text(json.dumps(record))
    return model, {**record, "cached": False}


def outputs(
    model_dir: Path, name: str, texts: list[str], cache: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and encoder features (the head's input) of `texts`, cached beside the model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.tasks.intent.model import batched_outputs

    # Keyed by the texts too: a split changed since (say, a held-out share) is scored again.
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]
    path = model_dir.parent / f"{name}-{digest}.npz"
    if path.is_file():
        saved = np.load(path)
        return saved["logits"], saved["features"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
    encoded = tokenizer(texts, truncation=True, max_length=128)
    examples = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    logits, features = batched_outputs(model, tokenizer, examples, 128, features=True)
    np.savez(path, logits=logits, features=features)
    return logits, features


def evaluate_config(
    model_dir: Path,
    parts: dict[str, list[tuple[str, str]]],
    cache: Path,
    dev: bool,
    config: Any,
) -> dict[str, Any]:
    """Every method at every target on test (and, with `dev`, the method choice's dev scores)."""
    from ml.tasks.intent.out_of_scope import (
        auroc,
        fit_detector,
        fpr_at_tpr,
        oos_metrics,
    )
    from ml.training.calibration import read_temperature

    labels = json.loads((model_dir / "labels.json").read_text())
    temperature = read_temperature(model_dir)
    index = {label: i for i, label in enumerate(labels)}
    data = {
        split: outputs(model_dir, split, [t for t, _ in parts[split]], cache)
        for split in ("train", "validation", "test")
    }
    if dev:
        data["oos_train"] = outputs(
            model_dir, "oos_train", [t for t, _ in parts["oos_train"]], cache
        )
    truth = {split: [y for _, y in parts[split]] for split in parts}
    train_ids = np.array([index.get(y, -1) for y in truth["train"]])
    results: dict[str, Any] = {"methods": {}, "dev": {}}
    for method in METHODS:
        per_target, dev_targets = {}, {}
        for target in TARGETS:
            detector, record = fit_detector(
                method,
                target,
                "oos",
                labels,
                temperature,
                (*data["validation"], truth["validation"]),
                (data["train"][1], train_ids),
                config.oos_recall_target,
            )
            decisions = detector.decide(*data["test"])
            per_target[target] = {
                **oos_metrics(detector, decisions, truth["test"], labels),
                "threshold": record["threshold"],
                "validation_kept": record["validation"].get("in_scope_kept"),
                "rule": record["rule"],
            }
            if dev:  # on validation (where it was calibrated) and the unseen oos_train
                dev_targets[target] = {
                    "in_scope_accuracy": record["validation"]["in_scope_accuracy"],
                    "oos_recall": float(detector.decide(*data["oos_train"]).out_of_scope.mean()),
                }
        results["methods"][method] = per_target
        if dev:
            # Validation's in-scope queries against the unseen oos_train queries.
            val = detector.decide(*data["validation"]).ranking()
            oos = detector.decide(*data["oos_train"]).ranking()
            scores = np.concatenate([val, oos])
            positive = np.r_[np.zeros(len(val), bool), np.ones(len(oos), bool)]
            results["dev"][method] = {
                "auroc": auroc(scores, positive),
                "fpr_at_95_tpr": fpr_at_tpr(scores, positive),
                "targets": dev_targets,
            }

    # The recall rule's target swept, for the shipped method at the shipped in-scope target.
    def sweep(validation: tuple[np.ndarray, np.ndarray, list[str]]) -> dict[str, Any]:
        rows = {}
        for recall in RECALL_TARGETS:
            detector, record = fit_detector(
                config.oos_method,
                config.oos_target,
                "oos",
                labels,
                temperature,
                validation,
                (data["train"][1], train_ids),
                recall,
            )
            test = oos_metrics(detector, detector.decide(*data["test"]), truth["test"], labels)
            rows[str(recall)] = {
                "rule": record["rule"],
                "threshold": record["threshold"],
                "validation_kept": record["validation"].get("in_scope_kept"),
                "validation_recall": record["validation"].get("oos_recall"),
                "test_accuracy": test["in_scope_accuracy"],
                "test_recall": test["oos_recall"],
            }
        return rows

    results["recall_rule"] = sweep((*data["validation"], truth["validation"]))
    if dev:  # the other use of labelled queries: no class, every one calibrates
        results["calibration_only"] = sweep(
            (
                np.vstack([data["validation"][0], data["oos_train"][0]]),
                np.vstack([data["validation"][1], data["oos_train"][1]]),
                truth["validation"] + ["oos"] * len(data["oos_train"][0]),
            )
        )
    # The head's own answer, no rejection, on each split's in-scope queries: its accuracy, and
    # the share its out-of-scope class takes (0 without that class). Validation against test
    # shows how far our validation (carved from the official train) is from the official val.
    for split in ("validation", "test"):
        logits, _ = data[split]
        inside = np.array([y != "oos" for y in truth[split]])
        head = np.array(labels)[logits.argmax(axis=1)]
        results.setdefault("closed_set_accuracy", {})[split] = float(
            (head == np.array(truth[split]))[inside].mean()
        )
        results.setdefault("head_oos_share", {})[split] = float((head == "oos")[inside].mean())
    return results


def print_results(configs: dict[str, dict[str, Any]], n: dict[str, int]) -> None:
    print(
        f"\nCLINC150, MiniLM-L6. test: official val ({n['test_in']} in-scope) + oos_val "
        f"({n['test_oos']} out-of-scope); thresholds calibrated on our validation "
        f"({n['validation']} in-scope) to keep the target share of in-scope queries, raised "
        "by the shipped recall rule where validation has labelled out-of-scope queries"
    )
    for name, r in configs.items():
        t = r["timing"]
        closed, taken = r["closed_set_accuracy"], r["head_oos_share"]
        print(
            f"\n[{name}] train {r['n_train']} rows; {t['epochs_run']} epochs run, epoch "
            f"{t['best_epoch']} kept; fine-tune {t['wall_seconds'] / 60:.1f} min wall, "
            f"{t['cpu_seconds'] / 60:.1f} CPU-min{' (cached)' if t['cached'] else ''}\n"
            f"closed-set in-scope accuracy (no rejection): validation {closed['validation']:.4f}, "
            f"test {closed['test']:.4f}; in-scope queries the head's own oos class takes: "
            f"validation {taken['validation']:.4f}, test {taken['test']:.4f}"
        )
        print(
            f"{'method':<12}{'AUROC':>7}{'FPR95':>7}{'target':>8}{'thresh':>10}{'val kept':>9}"
            f"{'kept':>7}{'in-acc':>8}{'oos rec':>8}{'oos prec':>9}"
        )
        for method, per_target in r["methods"].items():
            for i, (target, m) in enumerate(per_target.items()):
                lead = (
                    f"{method:<12}{m['oos_auroc']:>7.4f}{m['oos_fpr_at_95_tpr']:>7.3f}"
                    if i == 0
                    else " " * 26
                )
                print(
                    f"{lead}{target:>8.2f}{m['threshold']:>10.4f}{m['validation_kept']:>9.3f}"
                    f"{m['in_scope_kept']:>7.3f}{m['in_scope_accuracy']:>8.4f}"
                    f"{m['oos_recall']:>8.3f}{m['oos_precision']:>9.3f}"
                )
        print(
            f"recall rule ({r['n_labelled_validation']} labelled out-of-scope validation "
            "queries), shipped method and in-scope target: recall target -> which target set "
            "the threshold, validation kept / recall, test in-scope accuracy / recall"
        )
        _print_rule(r["recall_rule"])
        if r.get("calibration_only"):
            print(
                "calibration only: this model (no out-of-scope class), calibrated on our "
                "validation plus the 100 oos_train queries, unseen in this training"
            )
            _print_rule(r["calibration_only"])
        if r.get("dev"):
            print(
                "dev (where the method and the default target were chosen): our validation's "
                "in-scope queries vs oos_train, unseen in this training; per target: validation "
                "in-scope accuracy / oos_train recall"
            )
            for method, m in r["dev"].items():
                per = "  ".join(
                    f"{t:.2f}: {x['in_scope_accuracy']:.3f}/{x['oos_recall']:.2f}"
                    for t, x in m["targets"].items()
                )
                print(
                    f"  {method:<12}AUROC {m['auroc']:.4f}  FPR95 {m['fpr_at_95_tpr']:.3f}  {per}"
                )


def _print_rule(rows: dict[str, dict[str, Any]]) -> None:
    for recall, m in rows.items():
        val_recall = m["validation_recall"]
        print(
            f"  {recall:>5}: {m['rule']:<16}{m['threshold']:>9.4f}  {m['validation_kept']:.3f} / "
            f"{'-' if val_recall is None else f'{val_recall:.3f}'}  "
            f"{m['test_accuracy']:.4f} / {m['test_recall']:.3f}"
        )


def print_summary(configs: dict[str, dict[str, Any]], target: float) -> None:
    """The issue's comparison on one line each: max-softmax vs the shipped method, with and
    without oos_train, at the shipped target."""
    from ml.config import DEFAULT_OOS_METHOD

    print(f"\nSummary at the shipped target {target} (test split):")
    print(
        f"{'configuration':<20}{'method':<13}{'AUROC':>7}{'FPR95':>7}{'in-acc':>8}"
        f"{'oos rec':>8}{'oos prec':>9}"
    )
    for name, r in configs.items():
        for method in dict.fromkeys(("msp", DEFAULT_OOS_METHOD)):
            m = r["methods"][method][target]
            print(
                f"{name:<20}{method:<13}{m['oos_auroc']:>7.4f}{m['oos_fpr_at_95_tpr']:>7.3f}"
                f"{m['in_scope_accuracy']:>8.4f}{m['oos_recall']:>8.3f}{m['oos_precision']:>9.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 intents, 1 epoch: a smoke run")
    parser.add_argument("--epochs", type=int, help="train this many epochs (default: shipped)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "intentflow-bench-oos",
        help="fine-tuned models and their outputs, reused by a later run with the same settings",
    )
    parser.add_argument(
        "--only",
        choices=("without", "with"),
        help="train and score one configuration (without or with oos_train); default: both",
    )
    args = parser.parse_args()
    if not CLINC.is_file():
        print(f"skipped: {CLINC} not found (the public datasets live in ../shared/datasets)")
        return
    from ml.tasks.intent.train import TrainConfig

    print(f"load average at start: {os.getloadavg()}")
    parts = splits(args.quick)
    config = TrainConfig()
    if args.quick or args.epochs:
        config = TrainConfig(epochs=1 if args.quick else args.epochs)
    configs: dict[str, dict[str, Any]] = {}
    for name, with_oos in (("without oos_train", False), ("with oos_train", True)):
        if args.only and args.only != name.split()[0]:
            continue
        given = {**parts, "train": parts["train"] + (parts["oos_train"] if with_oos else [])}
        model, timing = trained_model(args.cache, "with" if with_oos else "without", given, config)
        these = as_fine_tune_splits(given, config.oos_label)
        result = evaluate_config(model, these, args.cache, not with_oos, config)
        labelled = sum(y == "oos" for _, y in these["validation"])
        configs[name] = {
            **result,
            "timing": timing,
            "n_train": len(these["train"]),
            "n_labelled_validation": labelled,
        }
    n = {
        "test_in": sum(y != "oos" for _, y in parts["test"]),
        "test_oos": sum(y == "oos" for _, y in parts["test"]),
        "validation": len(parts["validation"]),
    }
    print_results(configs, n)
    if config.oos_target in TARGETS:
        print_summary(configs, config.oos_target)
    settings = {k: v for k, v in asdict(config).items() if k not in ("base_model", "num_threads")}
    print(f"\ntraining settings: {json.dumps(settings)}")
    print(f"load average at end: {os.getloadavg()}; cache: {args.cache}")


if __name__ == "__main__":
    main()
