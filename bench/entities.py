"""Entity tagging benchmark: the fine-tuned MiniLM tagger (ml.tasks.entities) against a regex +
gazetteer tagger, on the same split of Bitext, in one run.

    python bench/entities.py              # MiniLM, 3 epochs (minutes on a CPU)
    python bench/entities.py --quick      # 1 epoch: a smoke run of the same code path

Data: ../shared/datasets/bitext-customer-support (Bitext, CDLA-Sharing-1.0), split by our own
rule (ml.tasks.entities.data: sha256 of the text's template, 80/10/10), plus ABCD weak labels when the
sample is there (ASAPP, MIT). Bitext's official held-out 20% is not in the folder and is not
used. The baseline learns its gazetteer (names, cities, countries, account types) from the
same train split and finds ids and amounts with regular expressions; both are scored with
the same entity-level exact-span metric (ml.tasks.entities.metrics.span_metrics).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

PATTERNS = {
    # Long digit runs are order numbers; "#" plus digits are invoices (Bitext's convention).
    "order_id": r"(?<![\w#$])\d{6,}(?!\w)",
    "invoice_id": r"#\d+(?!\w)",
    # The number of "$12", "12 dollars", "12 usd" (Bitext spans the number only).
    "amount": r"(?<=\$)\d+(?:\.\d+)?(?!\w)|(?<![\w#$])\d+(?:\.\d+)?(?=\s*(?:dollars?|usd|euros?)\b)",
}


# Values no Bitext row uses, swapped into the test texts: does a tagger generalise beyond the
# handful of names, cities, countries and account types Bitext repeats?
UNSEEN = {
    "person_name": ["Ms. Okafor", "Dr. Chen", "Mrs. Novak", "Mr. Haddad"],
    "city": ["Lisbon", "Denver", "Osaka", "Nairobi"],
    "country": ["Portugal", "Kenya", "Japan", "Chile"],
    "account_type": ["business", "student", "family", "premium plus"],
}


def with_unseen_values(
    texts: list[str], spans: list[list[Any]]
) -> tuple[list[str], list[list[Any]]]:
    """The texts with each gazetteer-type entity replaced by an unseen value, offsets moved."""
    from ml.tasks.entities.spans import Span

    out_texts, out_spans = [], []
    for i, (text, row) in enumerate(zip(texts, spans, strict=True)):
        new_text, new_row, shift = text, [], 0
        for s in sorted(row):
            start, end = s.start + shift, s.end + shift
            if s.type in UNSEEN:
                value = UNSEEN[s.type][i % len(UNSEEN[s.type])]
                new_text = new_text[:start] + value + new_text[end:]
                shift += len(value) - (end - start)
                end = start + len(value)
            new_row.append(Span(start, end, s.type))
        out_texts.append(new_text)
        out_spans.append(new_row)
    return out_texts, out_spans


class RegexGazetteerTagger:
    """The simple baseline: regexes for ids and amounts, surface forms seen in train for the rest."""

    def __init__(self, texts: list[str], spans: list[list[Any]]) -> None:
        gazetteer: dict[str, set[str]] = defaultdict(set)
        for text, row in zip(texts, spans, strict=True):
            for s in row:
                if s.type not in PATTERNS:
                    gazetteer[s.type].add(text[s.start : s.end].lower())
        self.rules = [(kind, re.compile(p, re.IGNORECASE)) for kind, p in PATTERNS.items()]
        for kind, values in gazetteer.items():
            words = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
            self.rules.append((kind, re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)))

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        found = [(m.start(), -m.end(), kind) for kind, rx in self.rules for m in rx.finditer(text)]
        out, taken = [], -1
        for start, neg_end, kind in sorted(found):  # leftmost, then longest; no overlaps
            if start >= taken:
                out.append((kind, start, -neg_end))
                taken = -neg_end
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch: a smoke run")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    bitext = SHARED / "bitext-customer-support" / "train.csv"
    abcd = SHARED / "abcd-sample" / "abcd_sample.json"
    if not bitext.exists():
        sys.exit(f"skipped: {bitext} not found (the public datasets beside the repo)")

    from ml.tasks import entities
    from ml.tasks.entities.data import read_split
    from ml.tasks.entities.metrics import span_metrics
    from ml.tasks.entities.model import Tagger

    work = Path(tempfile.mkdtemp(prefix="bench-entities-"))
    snap = entities.build_dataset(
        str(bitext), work / "snap", abcd=str(abcd) if abcd.exists() else None
    )
    folder = Path(snap["path"])
    print(f"snapshot: {snap['counts']}; quarantined rules {snap['quarantine_rules']}")
    train_texts, train_spans = read_split(folder / "train.parquet")
    test_texts, test_spans = read_split(folder / "test.parquet")
    gold = [[(s.type, s.start, s.end) for s in row] for row in test_spans]

    tick = time.perf_counter()
    baseline = RegexGazetteerTagger(train_texts, train_spans)
    base = span_metrics(gold, [baseline.spans(t) for t in test_texts])
    base_seconds = time.perf_counter() - tick

    epochs = 1 if args.quick else args.epochs
    tick = time.perf_counter()
    trained = entities.fine_tune(
        folder, work / "model", {"epochs": epochs, "num_threads": args.threads}
    )
    train_seconds = time.perf_counter() - tick
    import torch

    torch.set_num_threads(args.threads)  # latency on the same threads as training
    model = entities.evaluate(Path(trained["artifact_dir"]), folder / "test.parquet")

    print(
        f"\nBitext entity test split: {len(test_texts)} texts, {model['entities']} entities; "
        f"MiniLM-L6 {epochs} epoch(s), trained in {train_seconds:.0f} s "
        f"({trained['samples_per_second']:.1f} samples/s); baseline built+run in {base_seconds:.2f} s\n"
    )
    header = (
        f"{'type':<14}{'support':>8}  {'regex+gazetteer P/R/F1':>24}  {'MiniLM tagger P/R/F1':>24}"
    )
    table(base, model, header)
    unseen_texts, unseen_spans = with_unseen_values(test_texts, test_spans)
    unseen_gold = [[(s.type, s.start, s.end) for s in row] for row in unseen_spans]
    base_u = span_metrics(unseen_gold, [baseline.spans(t) for t in unseen_texts])
    predicted = Tagger.load(Path(trained["artifact_dir"])).spans(unseen_texts)
    model_u = span_metrics(
        unseen_gold, [[(p["type"], p["start"], p["end"]) for p in row] for row in predicted]
    )
    print(
        "\nThe same texts, names/cities/countries/account types swapped for values unseen in train:\n"
    )
    table(base_u, model_u, header)
    print(
        f"\nmodel latency per message (batch 1): p50 {model['latency_ms_p50']} ms, "
        f"p95 {model['latency_ms_p95']} ms"
    )


def table(base: dict[str, Any], model: dict[str, Any], header: str) -> None:
    from ml.tasks.entities.spans import ENTITY_TYPES

    print(header)
    print("-" * len(header))
    for kind in ENTITY_TYPES:
        b, m = base["per_class"].get(kind), model["per_class"].get(kind)
        if not (b or m):
            continue
        support = (m or b)["support"]
        print(f"{kind:<14}{support:>8}  {_cell(b):>24}  {_cell(m):>24}")
    print("-" * len(header))
    for key in ("micro_f1", "macro_f1"):
        ratio = model[key] / base[key] if base[key] else float("inf")
        print(
            f"{key:<14}{'':>8}  {base[key]:>24.3f}  {model[key]:>24.3f}   ({ratio:.2f}x baseline)"
        )


def _cell(x: dict[str, Any] | None) -> str:
    return f"{x['precision']:.3f}/{x['recall']:.3f}/{x['f1']:.3f}" if x else "-"


if __name__ == "__main__":
    main()
