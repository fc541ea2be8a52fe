"""Training benchmark: our recipe against the common BERT fine-tuning tutorial, and quality on
real public data. One run, one machine, same data; each recipe runs in its own process so its
peak memory is its own.

    python bench/train.py            # speed (Banking77 subset) + quality (Banking77, DSTC11)
    python bench/train.py --quick    # a small smoke run (CI-sized), same code path

Data comes from ../shared/datasets (cite: PolyAI Banking77, CC BY 4.0; Amazon DSTC11 Track 2,
CDLA-Permissive-2.0). Splits are our own (sha256 of the row id: 80/10/10), the official test
sets stay held out.
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
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


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
    return {"samples_per_second": samples / seconds, "accuracy": correct / len(test["text"])}


def our_recipe(snapshot: Path, epochs: int | None) -> dict[str, Any]:
    """`intentflow train`'s defaults (TrainConfig), evaluated like the pipeline does."""
    from ml.evaluate import evaluate_model
    from ml.train import TrainConfig, fine_tune

    config = (
        TrainConfig()
        if epochs is None
        else TrainConfig(epochs=epochs, early_stopping_patience=None)
    )
    out = Path(tempfile.mkdtemp(prefix="bench-ours-")) / "model"
    trained = fine_tune(snapshot, out, config)
    test = evaluate_model(out, snapshot / "test.parquet", trained["artifact_sha256"])
    return {
        "samples_per_second": trained["samples_per_second"],
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "epochs_run": trained["epochs_run"],
        "wall_seconds": trained["wall_seconds"],
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
    from ml.dataset import snapshot_from_file

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--worker", choices=["tutorial", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.snapshot, args.epochs)
        return
    banking = SHARED / "banking77" / "train.csv"
    if not banking.exists():
        print(f"skipped: {banking} not found (the public datasets live in ../shared/datasets)")
        return
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    speed_rows = 400 if args.quick else 2000
    speed_epochs = 1
    speed = snapshot_of(banking, "text", "category", root, limit=speed_rows)
    base = run_worker("tutorial", speed, speed_epochs)
    ours = run_worker("ours", speed, speed_epochs)
    print(
        f"\nSpeed: MiniLM-L6, Banking77 first {speed_rows} train rows, {speed_epochs} epoch, {os.cpu_count()} CPU cores"
    )
    print(f"{'recipe':<34}{'samples/s':>10}{'test acc':>10}{'peak MB':>9}")
    print(
        f"{'tutorial (pad 128, fp32, batch 16)':<34}{base['samples_per_second']:>10.1f}{base['accuracy']:>10.4f}{base['peak_rss_mb']:>9.0f}"
    )
    print(
        f"{'intentflow (TrainConfig)':<34}{ours['samples_per_second']:>10.1f}{ours['accuracy']:>10.4f}{ours['peak_rss_mb']:>9.0f}"
    )
    print(f"speed-up: {ours['samples_per_second'] / base['samples_per_second']:.1f}x")

    print("\nQuality: MiniLM-L6 with intentflow train's defaults, our 80/10/10 split")
    print(
        f"{'dataset':<22}{'train':>7}{'test':>6}{'accuracy':>10}{'macro-F1':>10}{'epochs':>8}{'train s':>9}"
    )
    quality = [("banking77", banking, "text", "category")]
    for name in ("insurance", "finance"):
        quality.append(
            (f"dstc11-{name}", SHARED / "dstc11-intents" / f"{name}.jsonl", "utterance", "intent")
        )
    for name, path, text, label in quality:
        snap = snapshot_of(path, text, label, root, limit=speed_rows if args.quick else None)
        r = run_worker("ours", snap, 1 if args.quick else None)
        n_train, n_test = (
            pq.read_metadata(snap / f"{s}.parquet").num_rows for s in ("train", "test")
        )
        print(
            f"{name:<22}{n_train:>7}{n_test:>6}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['epochs_run']:>8}{r['wall_seconds']:>9.0f}"
        )
    print(f"\n(scratch files in {root})")


if __name__ == "__main__":
    main()
