"""Answer-suggestion benchmark on Bitext (our group split): the fine-tuned bi-encoder against
TF-IDF retrieval and the untrained MiniLM-L6 (zero-shot embeddings), in the same run.

    python bench/answers.py            # 1 epoch of fine-tuning, the full test split
    python bench/answers.py --quick    # a smoke run of the same code path (few steps)

Ranking: each test question against the whole answer bank (Bitext's 3,611 replies, one per
request). Relevant: the question's own reply (gold answer: recall@1/5, MRR) and, looser, any
reply of the same intent. Latency: per query at batch 1 (encode + score + top-5) against a
10,000-answer bank: the real replies plus synthetic distractors, each the lines of two real
replies of different intents interleaved, so distractors read like replies, share the bank's
vocabulary and placeholders, and are never a real reply nor start like one. Gold metrics are
reported on that bank too. `--artifact DIR` reuses a trained model instead of fine-tuning.

Data: ../shared/datasets/bitext-customer-support (Bitext, CDLA-Sharing-1.0); the held-out
Bitext test set stays held out; our split groups questions by template
(ml/tasks/answers/data.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

BANK_10K = 10_000


def distractors(bank: pa.Table, total: int, seed: int = 0) -> list[str]:
    """`total - len(bank)` synthetic replies: the lines of two real replies of different intents
    interleaved (A1, B1, A2, B2, ...). Never a copy of a real reply's opening, which a
    truncating encoder would tie with the real reply."""
    from ml.tasks.answers.bank import answer_id

    rng = np.random.default_rng(seed)
    texts = bank["answer"].to_pylist()
    intents = [tuple(i) for i in bank["intents"].to_pylist()]
    seen = {answer_id(t) for t in texts}
    out: list[str] = []
    while len(out) < total - len(texts):
        a, b = rng.integers(len(texts), size=2)
        if intents[a] == intents[b]:
            continue
        first, second = texts[a].split("\n"), texts[b].split("\n")
        lines = [x for pair in zip(first, second, strict=False) for x in pair]
        lines += first[len(second) :] + second[len(first) :]
        text = "\n".join(lines)
        if answer_id(text) not in seen:
            seen.add(answer_id(text))
            out.append(text)
    return out


def tfidf(bank_texts: list[str]) -> Callable[[Sequence[str]], np.ndarray]:
    """Word uni+bigram TF-IDF (sublinear tf) fitted on the (10k) bank; cosine to each answer."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    matrix = vectorizer.fit_transform(bank_texts).T.tocsr()  # features x bank

    def scores(queries: Sequence[str]) -> np.ndarray:
        return (vectorizer.transform(list(queries)) @ matrix).toarray()

    return scores


def encoder(
    model_dir: str, bank_texts: list[str], cfg: Any, stored: np.ndarray | None = None
) -> Callable:
    """Mean-pooled normalised embeddings of a checkpoint (ml.tasks.answers.model's pooling); the
    bank is encoded once (its first rows taken from `stored`, an artifact's saved bank
    embeddings)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ml.tasks.answers.model import encode

    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    done = 0 if stored is None else len(stored)
    fresh = encode(model, tokenizer, bank_texts[done:], cfg.answer_max_length)
    bank = fresh if stored is None else np.concatenate([stored, fresh])

    def scores(queries: Sequence[str]) -> np.ndarray:
        return encode(model, tokenizer, queries, cfg.max_length) @ bank.T

    return scores


def measure(
    scores: Callable[[Sequence[str]], np.ndarray],
    rows: dict[str, list[Any]],
    bank: pa.Table,
    intents: bool,
) -> dict[str, Any]:
    from ml.tasks.answers.metrics import ranking_metrics

    index = {a: i for i, a in enumerate(bank["answer_id"].to_pylist())}
    gold = [index[a] for a in rows["answer_id"]]
    tick = time.perf_counter()
    matrix = scores(rows["text"])
    seconds = time.perf_counter() - tick
    return ranking_metrics(
        matrix,
        gold,
        rows["intent"] if intents else None,
        bank["intents"].to_pylist() if intents else None,
    ) | {"batch_seconds": seconds}


def first_columns(scores: Callable, m: int) -> Callable:
    return lambda queries: scores(queries)[:, :m]


def latency(scores: Callable[[Sequence[str]], np.ndarray], texts: list[str], n: int) -> dict:
    from ml.tasks.answers.evaluation import query_latency

    def search(batch: Sequence[str]) -> Any:
        row = scores(batch)[0]
        return np.argpartition(-row, 4)[:5]

    return query_latency(search, texts, n)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, small bank")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--artifact", help="a trained answers artifact: skip fine-tuning")
    parser.add_argument("--base-model", help="checkpoint dir (default: the packaged MiniLM-L6)")
    parser.add_argument("--steps", type=int, help="stop fine-tuning after this many steps")
    parser.add_argument("--bank", type=int, help=f"size of the big bank (default {BANK_10K:,})")
    parser.add_argument(
        "--zero-shot-big",
        action="store_true",
        help="also embed the big bank with the zero-shot model (minutes on a CPU)",
    )
    args = parser.parse_args()
    source = SHARED / "bitext-customer-support" / "train.csv"
    if not source.exists():
        print(f"skipped: {source} not found (the public datasets live in ../shared/datasets)")
        return
    import torch

    from ml.config import default_base_model
    from ml.tasks.answers import build_dataset, fine_tune
    from ml.tasks.answers.train import AnswersConfig

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    snap = build_dataset(str(source), root / "snapshots")
    folder = Path(snap["path"])
    bank = pq.read_table(folder / "answers.parquet")
    rows = pq.read_table(folder / "test.parquet").to_pydict()
    if args.quick:
        rows = {k: v[:80] for k, v in rows.items()}
    steps = 8 if args.quick and args.steps is None else args.steps
    # Validation against 500 answers (its own + a fixed sample): CPU time goes to training.
    base = args.base_model or default_base_model()
    config = AnswersConfig(
        base_model=base, epochs=1, max_steps=steps, num_threads=args.threads, validation_bank=500
    )
    tick = time.perf_counter()
    if args.artifact:
        from ml.tasks.answers.train import artifact_summary

        trained = artifact_summary(Path(args.artifact))
    else:
        trained = fine_tune(folder, root / "model", config)
    train_seconds = time.perf_counter() - tick
    print(f"fine-tuning (and embedding the bank): {train_seconds:.0f} s", flush=True)

    total = args.bank or (4_000 if args.quick else BANK_10K)
    extra = distractors(bank, total)
    big = pa.table(
        {
            "answer_id": bank["answer_id"].to_pylist() + [f"d-{i}" for i in range(len(extra))],
            "answer": bank["answer"].to_pylist() + extra,
            "intents": bank["intents"].to_pylist() + [[] for _ in extra],
        }
    )
    from safetensors.numpy import load_file

    stored = load_file(str(Path(trained["artifact_dir"]) / "answer_embeddings.safetensors"))
    methods = {
        "TF-IDF (uni+bigram, cosine)": lambda texts: tfidf(texts),
        "MiniLM-L6 zero-shot": lambda texts: encoder(base, texts, config),
        "MiniLM-L6 fine-tuned (ours)": lambda texts: encoder(
            trained["artifact_dir"], texts, config, stored["embeddings"]
        ),
    }
    results = {}
    for name, build in methods.items():
        tick = time.perf_counter()
        big_ranked = name != "MiniLM-L6 zero-shot" or args.zero_shot_big
        # The bank is the big bank's first rows: embed once, slice for the real bank.
        scores = build((big if big_ranked else bank)["answer"].to_pylist())
        results[name] = {
            "bank": measure(first_columns(scores, bank.num_rows), rows, bank, intents=True),
            "big": measure(scores, rows, big, intents=False) if big_ranked else None,
            "latency": latency(scores, rows["text"], 40) if big_ranked else None,
            "seconds": time.perf_counter() - tick,
        }
        print(f"{name}: done in {results[name]['seconds']:.0f} s", flush=True)

    n, m = len(rows["text"]), bank.num_rows
    print(
        f"\nAnswer suggestion, Bitext (our group split): {n} test questions, bank {m} replies; "
        f"fine-tuning: {trained['epochs_run']} epoch(s), {trained['samples_per_second']:.1f} "
        f"pairs/s, {train_seconds:.0f} s, {args.threads} threads"
    )
    print(
        f"{'method':<30}{'R@1':>7}{'R@5':>7}{'MRR':>7}{'int R@1':>9}{'int MRR':>9}"
        f"{'R@1 big':>9}{'MRR big':>9}{'p50 ms':>8}{'p95 ms':>8}"
    )
    for name, r in results.items():
        b = r["bank"]
        big_part = (
            f"{r['big']['recall_at_1']:>9.3f}{r['big']['mrr']:>9.3f}"
            f"{r['latency']['ms_p50']:>8.1f}{r['latency']['ms_p95']:>8.1f}"
            if r["big"]
            else f"{'-':>9}{'-':>9}{'-':>8}{'-':>8}"
        )
        print(
            f"{name:<30}{b['recall_at_1']:>7.3f}{b['recall_at_5']:>7.3f}{b['mrr']:>7.3f}"
            f"{b['intent_recall_at_1']:>9.3f}{b['intent_mrr']:>9.3f}{big_part}"
        )
    ours, base = results["MiniLM-L6 fine-tuned (ours)"], results["TF-IDF (uni+bigram, cosine)"]
    zero = results["MiniLM-L6 zero-shot"]
    print(
        f"MRR ratio, fine-tuned / TF-IDF: {ours['bank']['mrr'] / max(base['bank']['mrr'], 1e-9):.2f}x; "
        f"fine-tuned / zero-shot: {ours['bank']['mrr'] / max(zero['bank']['mrr'], 1e-9):.2f}x"
    )
    print(
        f"big bank: {m} real replies + {len(extra)} synthetic distractors (see --help); "
        "latency per query at batch 1 against it; zero-shot ranks the big bank only with "
        "--zero-shot-big (same architecture as fine-tuned, so the same latency)"
    )
    print(f"(scratch files in {root})")


if __name__ == "__main__":
    main()
