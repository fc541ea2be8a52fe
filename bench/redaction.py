"""Redaction: ours (ml/ingest/redact.py) against Presidio's pattern recognizers, same texts, same run.

    PYTHONPATH=. python bench/redaction.py [--days 5 --per-day 400]

Recall per PII kind on the generator's seeded values and on the ABCD sample's scenario values,
the share of PII-free texts changed (generated turns without PII; Banking77 texts), and speed.
Presidio's full AnalyzerEngine needs a spaCy model that no PyPI package ships, so its pattern
recognizers (e-mail, card, phone, IBAN) are called directly; it has no order-id or name
recognizer without NER, so those rows show what a regex-only Presidio leaves behind.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile
import time
from datetime import date
from pathlib import Path

from ml.ingest import redaction_metrics as ev
from ml.ingest.redact import redact
from ml.synthetic.generate import generate

# The public datasets, found as by the other benchmarks and the tests (tests/ci.py).
REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"


def presidio_redactor():
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
    )

    recognizers = [
        (EmailRecognizer(), "EMAIL_ADDRESS", "[EMAIL]"),
        (CreditCardRecognizer(), "CREDIT_CARD", "[CARD]"),
        (PhoneRecognizer(supported_regions=("US", "GB")), "PHONE_NUMBER", "[PHONE]"),
        (IbanRecognizer(), "IBAN_CODE", "[IBAN]"),
    ]

    def run(text: str) -> str:
        spans = []
        for rec, entity, placeholder in recognizers:
            for r in rec.analyze(text, [entity], None):
                if r.score >= 0.3:
                    spans.append((r.start, r.end, placeholder))
        for start, end, placeholder in sorted(spans, reverse=True):
            text = text[:start] + placeholder + text[end:]
        return text

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--per-day", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-redaction-") as tmp:
        days = generate(
            Path(tmp), days=args.days, per_day=args.per_day, start=date(2026, 11, 1), seed=3
        )
        generated = [c for d in days for c in ev.generated_cases(d.files, d.pii)]
    abcd_path = DATASETS / "abcd-sample" / "abcd_sample.json"
    abcd = ev.abcd_cases(abcd_path) if abcd_path.exists() else []
    b77 = DATASETS / "banking77" / "train.csv"
    with open(b77, newline="", encoding="utf-8") as fh:
        banking = [r["text"].strip() for r in csv.DictReader(fh)] if b77.exists() else []

    presidio = presidio_redactor()
    presidio("warm up a@b.com")  # its first e-mail call tries the network (public-suffix list)
    systems = {"ours": redact, "presidio": presidio}
    rows: dict[str, dict[str, str]] = {}
    for name, fn in systems.items():
        start = time.perf_counter()
        gen, gen_fc, _ = ev.recall(generated, fn)
        seconds = time.perf_counter() - start
        ab, _, _ = ev.recall([(t, v) for t, v, _ in abcd], fn)
        b_fc, _, _ = ev.false_change_rate(banking, fn)
        col = rows.setdefault(name, {})
        for kind in ("email", "phone", "card", "order_id", "name"):
            col[f"generated {kind}"] = f"{gen.rate(kind):.2%} ({gen.found[kind]}/{gen.total[kind]})"
        for kind in ("email", "phone", "order_id", "username", "name"):
            col[f"ABCD {kind}"] = f"{ab.found[kind]}/{ab.total[kind]}"
        col["PII-free generated turns changed"] = f"{gen_fc:.3%}"
        col["Banking77 texts changed"] = f"{b_fc:.3%}"
        col["texts/s (generated turns)"] = f"{len(generated) / seconds:,.0f}"
    if abcd:  # ours with the source's own values (what the ABCD adapter passes)
        found = ev.Recall()
        for text, values, known in abcd:
            out = redact(text, known)
            for kind, value in values:
                found.add(kind, value, out)
        rows["ours + source values"] = {
            f"ABCD {k}": f"{found.found[k]}/{found.total[k]}"
            for k in ("email", "phone", "order_id", "username", "name")
        }
    metrics = list(rows["ours"])
    names = list(rows)
    width = max(len(m) for m in metrics)
    print(
        f"{len(generated):,} generated turns ({args.days} days x {args.per_day}), "
        f"{len(abcd)} ABCD turns, {len(banking):,} Banking77 texts; one process, shared 2-core "
        "machine: speeds are noisy"
    )
    print(f"{'metric':<{width}}  " + "  ".join(f"{n:>24}" for n in names))
    for m in metrics:
        print(f"{m:<{width}}  " + "  ".join(f"{rows[n].get(m, '-'):>24}" for n in names))
    ratio = float(rows["ours"]["texts/s (generated turns)"].replace(",", "")) / float(
        rows["presidio"]["texts/s (generated turns)"].replace(",", "")
    )
    print(f"speed ratio ours/presidio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
