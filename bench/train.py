"""Training benchmark: our recipe against the common BERT fine-tuning tutorial, and quality on
real public data. One run, one machine, same data; each recipe runs in its own process so its
peak memory and CPU time are its own.

    python bench/train.py                       # every part
    python bench/train.py --part speed          # tutorial recipe vs ours (Banking77 subset)
    python bench/train.py --part banking77      # shipped defaults on Banking77 (~10 quiet min)
    python bench/train.py --part dstc11         # shipped defaults on DSTC11 insurance, finance
    python bench/train.py --quick               # a small smoke run (CI-sized), same code path
    python bench/train.py --part banking77 --epochs 3   # fewer epochs on a slow machine

Every training reports wall time and process CPU time (user + sys); on a loaded machine the
quiet wall time is estimated as CPU time / threads (it assumes the threads scale perfectly).

Data comes from ../shared/datasets (cite: PolyAI Banking77, CC BY 4.0; Amazon DSTC11 Track 2,
CDLA-Permissive-2.0). Splits are our own (sha256 of the row id: 80/10/10): validation picks the
best epoch (early stopping), test is only scored at the end; the official test sets stay held out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _cpu_seconds() -> float:
    """This process's CPU time (user + sys, every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tutorial_recipe(snapshot: Path, epochs: int) -> dict[str, Any]:
    """The recipe users copy from the common tutorial: pad every example to 128 tokens, fp32,
    batch 16, random batches, AdamW 2e-5 with a linear schedule (the baseline, on purpose)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    from ml.config import default_base_model

    torch.manual_seed(42)
    torch.set_num_threads(os.cpu_count() or 1)
    train = pq.read_table(snapshot / "train.parquet").to_pydict()
    test = pq.read_table(snapshot / "test.parquet").to_pydict()
    labels = sorted(set(train["intent"]))
    index = {label: i for i, label in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(default_base_model())
    model = AutoModelForSequenceClassification.from_pretrained(
        default_base_model(), num_labels=len(labels)
    )
    enc = tok(
        train["text"], padding="max_length", max_length=128, truncation=True, return_tensors="pt"
    )
    y = torch.tensor([index[v] for v in train["intent"]])
    data = torch.utils.data.TensorDataset(enc["input_ids"], enc["attention_mask"], y)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    optim = torch.optim.AdamW(model.parameters(), lr=2e-5)
    sched = get_linear_schedule_with_warmup(optim, 0, epochs * len(loader))
    model.train()
    seconds, samples = 0.0, 0
    cpu, started = _cpu_seconds(), time.perf_counter()
    for _ in range(epochs):
        for ids, mask, target in loader:
            tick = time.perf_counter()
            loss = model(input_ids=ids, attention_mask=mask, labels=target).loss
            loss.backward()
            optim.step()
            sched.step()
            optim.zero_grad()
            seconds += time.perf_counter() - tick
            samples += len(target)
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - started
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(test["text"]), 64):
            texts = test["text"][start : start + 64]
            batch = tok(
                texts, padding="max_length", max_length=128, truncation=True, return_tensors="pt"
            )
            pred = model(**batch).logits.argmax(-1).tolist()
            gold = test["intent"][start : start + 64]
            correct += sum(labels[p] == g for p, g in zip(pred, gold, strict=True))
    return {
        "samples_per_second": samples / seconds,
        "accuracy": correct / len(test["text"]),
        "train_cpu_seconds": cpu,
        "train_wall_seconds": wall,
        "threads": torch.get_num_threads(),
    }


def our_recipe(snapshot: Path, epochs: int | None) -> dict[str, Any]:
    """`intentflow train`'s defaults (TrainConfig), evaluated like the pipeline does."""
    from ml.artifact.files import METRICS_FILE, read_json
    from ml.tasks.intent.evaluation import evaluate_model
    from ml.tasks.intent.train import TrainConfig, fine_tune

    config = (
        TrainConfig()
        if epochs is None
        else TrainConfig(epochs=epochs, early_stopping_patience=None)
    )
    out = Path(tempfile.mkdtemp(prefix="bench-ours-")) / "model"
    cpu = _cpu_seconds()
    trained = fine_tune(snapshot, out, config)
    cpu = _cpu_seconds() - cpu
    test = evaluate_model(out, snapshot / "test.parquet", trained["artifact_sha256"])
    calibration = read_json(out / METRICS_FILE)["calibration"]
    return {
        "samples_per_second": trained["samples_per_second"],
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "ece_uncalibrated": test["ece_uncalibrated"],
        "ece": test["ece"],
        "temperature": test["temperature"],
        "calibration": calibration,
        "validation_accuracy": trained["validation"]["accuracy"],
        "epochs_run": trained["epochs_run"],
        "best_epoch": trained["best_epoch"],
        "train_wall_seconds": trained["wall_seconds"],
        "train_cpu_seconds": cpu,
        "threads": trained["config"]["num_threads"],
        "config": trained["config"],
    }


def worker(recipe: str, snapshot: Path, epochs: int | None) -> None:
    """Run one recipe in this process; print its result with this process's peak memory."""
    run = tutorial_recipe if recipe == "tutorial" else our_recipe
    result = run(snapshot, epochs)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def run_worker(recipe: str, snapshot: Path, epochs: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", recipe, "--snapshot", str(snapshot)]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    if out.returncode != 0:
        raise RuntimeError(f"{recipe} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.split("RESULT ", 1)[1])


def snapshot_of(path: Path, text: str, label: str, root: Path, limit: int | None = None) -> Path:
    """Our split of a public file; with `limit`, the train split cut to that many rows."""
    from ml.snapshots.labeled import snapshot_from_file

    snap = Path(snapshot_from_file(path, root, text, label)["path"])
    if limit is None:
        return snap
    small = root / f"{snap.name}-first{limit}"
    if not small.exists():
        small.mkdir()
        for name in ("train", "validation", "test"):
            table = pq.read_table(snap / f"{name}.parquet")
            pq.write_table(
                table.slice(0, limit if name == "train" else limit // 4), small / f"{name}.parquet"
            )
        (small / "snapshot.json").write_text((snap / "snapshot.json").read_text())
    return small


def quiet_minutes(result: dict[str, Any]) -> float:
    """Estimated wall minutes on a quiet machine: CPU time spread over the threads."""
    return result["train_cpu_seconds"] / result["threads"] / 60


def speed_part(banking: Path, root: Path, quick: bool) -> None:
    rows, epochs = (400, 1) if quick else (2000, 1)
    speed = snapshot_of(banking, "text", "category", root, limit=rows)
    base = run_worker("tutorial", speed, epochs)
    ours = run_worker("ours", speed, epochs)
    print(
        f"\nSpeed: MiniLM-L6, Banking77 first {rows} train rows, {epochs} epoch, "
        f"{os.cpu_count()} CPU cores"
    )
    print(f"{'recipe':<36}{'samples/s':>10}{'samples/CPU-s':>14}{'test acc':>10}{'peak MB':>9}")
    for name, r in (
        ("tutorial (pad 128, fp32, batch 16)", base),
        ("intentflow (TrainConfig)", ours),
    ):
        per_cpu = r["samples_per_second"] * r["train_wall_seconds"] / r["train_cpu_seconds"]
        print(
            f"{name:<36}{r['samples_per_second']:>10.1f}{per_cpu:>14.1f}"
            f"{r['accuracy']:>10.4f}{r['peak_rss_mb']:>9.0f}"
        )
    print(f"speed-up (samples/s): {ours['samples_per_second'] / base['samples_per_second']:.1f}x")


def quality_part(
    datasets: list[tuple[str, Path, str, str]], root: Path, quick: bool, epochs: int | None
) -> None:
    from ml.tasks.intent.train import TrainConfig

    print("\nQuality: MiniLM-L6 with intentflow train's defaults, our 80/10/10 split")
    if epochs is not None:
        print(f"(--epochs {epochs}: that many epochs, no early stopping; not the defaults)")
    header = (
        f"{'dataset':<18}{'train':>6}{'test':>6}{'accuracy':>9}{'macro-F1':>9}{'epochs':>7}"
        f"{'best':>5}{'wall min':>9}{'CPU min':>8}{'thr':>4}{'quiet min':>10}"
    )
    calibration = []
    print(header)
    for name, path, text, label in datasets:
        if not path.exists():
            print(f"{name:<18}skipped: {path} not found")
            continue
        snap = snapshot_of(path, text, label, root, limit=400 if quick else None)
        r = run_worker("ours", snap, 1 if quick else epochs)
        calibration.append((name, r))
        n_train, n_test = (
            pq.read_metadata(snap / f"{s}.parquet").num_rows for s in ("train", "test")
        )
        print(
            f"{name:<18}{n_train:>6}{n_test:>6}{r['accuracy']:>9.4f}{r['macro_f1']:>9.4f}"
            f"{r['epochs_run']:>7}{r['best_epoch']:>5}{r['train_wall_seconds'] / 60:>9.1f}"
            f"{r['train_cpu_seconds'] / 60:>8.1f}{r['threads']:>4}{quiet_minutes(r):>10.1f}"
        )
    print_calibration(calibration)
    config = TrainConfig()  # what `intentflow train` ships (--quick overrides epochs)
    print(f"defaults: {json.dumps({k: v for k, v in asdict(config).items() if k != 'base_model'})}")


def print_calibration(results: list[tuple[str, dict[str, Any]]]) -> None:
    """Expected calibration error (15 bins) at T = 1 and at the fitted temperature."""
    print("\nCalibration: temperature fitted on validation; ECE at T = 1 -> at T")
    print(f"{'dataset':<18}{'T':>7}{'limited by':>16}{'val ECE':>17}{'test ECE':>17}")
    for name, r in results:
        fit = r["calibration"]
        val = f"{fit['validation']['ece_uncalibrated']:.3f} -> {fit['validation']['ece']:.3f}"
        test = f"{r['ece_uncalibrated']:.3f} -> {r['ece']:.3f}"
        print(
            f"{name:<18}{r['temperature']:>7.3f}{fit['limited_by'] or '-':>16}{val:>17}{test:>17}"
        )


PARTS = ("speed", "banking77", "dstc11")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--part", action="append", choices=PARTS, help="run only this part (repeatable)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="banking77/dstc11: train this many epochs without early stopping (a slow machine)",
    )
    parser.add_argument("--worker", choices=["tutorial", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.snapshot, args.epochs)
        return
    parts = args.part or list(PARTS)
    banking = SHARED / "banking77" / "train.csv"
    if not banking.exists():
        print(f"skipped: {banking} not found (the public datasets live in ../shared/datasets)")
        return
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    if "speed" in parts:
        speed_part(banking, root, args.quick)
    datasets = []
    if "banking77" in parts:
        datasets.append(("banking77", banking, "text", "category"))
    if "dstc11" in parts:
        for name in ("insurance", "finance"):
            path = SHARED / "dstc11-intents" / f"{name}.jsonl"
            datasets.append((f"dstc11-{name}", path, "utterance", "intent"))
    if datasets:
        quality_part(datasets, root, args.quick, args.epochs)
    print(f"\n(scratch files in {root})")


if __name__ == "__main__":
    main()
