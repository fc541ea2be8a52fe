"""Drift checks on simulated days: how often an unshifted day raises an alarm (false alarms) and
how often a shifted one does (detection), for the shipped checks (configured threshold and the
sampling-noise floor, ml.monitoring.figures) against the baseline of the same thresholds
without the floor, at several day sizes. Runs ml.monitoring.figures.day_figures itself on
counts drawn from one generating model, so it needs no trained model and takes seconds.

The generating model (numbers picked to look like the synthetic transcripts' traffic and a
fine-tuned MiniLM, not measured from them): 24 intents with the generator's skewed weights,
the model right 90% of the time and its errors going to one neighbouring intent, confidence a
Beta(20, 1.5) for right answers and Uniform(0.2, 0.9) for wrong ones, 2% of in-scope messages
answered out of scope, 3 + Poisson(9) words from a Zipf vocabulary of 5,000 words. The
reference: a train split of 4,000 messages and held-out splits (validation and test) of 500
each, as a snapshot's 80/10/10 split gives, built as
ml.monitoring.profiles builds it: the train split's true labels through the model's
confusions on the held-out messages (ml.monitoring.drift.expected_answer_mix).

A shifted day: 10% of messages are a new intent (words from a vocabulary of its own for 40% of
their words, half answered out of scope, the rest as intent 0, confidence Uniform(0.3, 0.8)),
and one intent's wording changes (30% of its words new, confidence Uniform(0.4, 0.95)).

    python bench/monitoring_noise.py [--days 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

import numpy as np

from ml.config import DriftSettings
from ml.monitoring.drift import (
    binned,
    expected_answer_mix,
    histogram,
    length_edges,
    low_confidence,
    word_share,
    word_sums,
)
from ml.monitoring.figures import day_figures
from ml.synthetic.generate import INTENT_WEIGHTS

VOCAB, NEW_VOCAB = 5000, 400


def _messages(rng, n, shifted):
    """(predicted label, confidence, oos flag, words, true label) of n messages."""
    names = sorted(INTENT_WEIGHTS)
    w = np.array([INTENT_WEIGHTS[k] for k in names])
    true = rng.choice(len(names), n, p=w / w.sum())
    right = rng.random(n) < 0.9
    pred = np.where(right, true, (true + 1) % len(names))
    conf = np.where(right, rng.beta(20, 1.5, n), rng.uniform(0.2, 0.9, n))
    oos = rng.random(n) < 0.02
    lengths = 3 + rng.poisson(9, n)
    zipf = np.arange(1, VOCAB + 1) ** -1.1
    zipf /= zipf.sum()
    words = [rng.choice(VOCAB, k, p=zipf) for k in lengths]
    new_share = np.zeros(n)
    if shifted:
        new = rng.random(n) < 0.10
        pred[new] = 0
        oos[new] = rng.random(new.sum()) < 0.5
        conf[new] = rng.uniform(0.3, 0.8, new.sum())
        new_share[new] = 0.4
        changed = (true == 5) & ~new
        conf[changed] = rng.uniform(0.4, 0.95, changed.sum())
        new_share[changed] = 0.3
    out = []
    for i in range(n):
        ws = words[i].copy()
        swap = rng.random(len(ws)) < new_share[i]
        ws[swap] = VOCAB + rng.integers(0, NEW_VOCAB, swap.sum())
        label = "out_of_scope" if oos[i] else names[pred[i]]
        out.append((label, float(conf[i]), bool(oos[i]), ws, names[true[i]]))
    return out


def _reference(rng):
    train = _messages(rng, 4000, False)
    validation = _messages(rng, 1000, False)  # validation and test
    labels = Counter(m[4] for m in train)
    mix, size = expected_answer_mix(labels, [(m[4], m[0]) for m in validation])
    lengths = [len(m[3]) for m in train]
    edges = length_edges(lengths)
    vocabulary = {int(x) for m in train for x in m[3]}
    val_sums = word_sums(_unseen_by_message(validation, vocabulary))
    ref = {
        "version": 1, "snapshot_hash": "sim", "train_rows": 4000, "held_out_messages": 1000,
        "label_counts": {k: q * size for k, q in mix.items()}, "label_effective_n": size,
        "confidence_histogram": histogram([m[1] for m in validation]), "confidence_n": 1000,
        **low_confidence([m[1] for m in validation]),
        "oos_rate": sum(m[2] for m in validation) / 1000, "oos_n": 1000,
        "length_edges": edges, "length_counts": binned(lengths, edges),
        "length_mean": float(np.mean(lengths)),
        "unseen_token_share": word_share(val_sums),
        "unseen_word_sums": val_sums,
    }  # fmt: skip
    # What monitoring compared with before: the train split's true labels as the expected mix.
    true_labels = {**ref, "label_counts": dict(labels), "label_effective_n": len(train)}
    return ref, true_labels, vocabulary


def _day(rng, n, shifted, ref, vocabulary):
    msgs = _messages(rng, n, shifted)
    lengths = [len(m[3]) for m in msgs]
    return {
        "predictions": n, "versions": {"1": n},
        "label_counts": dict(Counter(m[0] for m in msgs)),
        "confidences": [m[1] for m in msgs], "oos_flags": [m[2] for m in msgs],
        "lengths": lengths, "length_counts": binned(lengths, ref["length_edges"]),
        "unseen_word_sums": word_sums(_unseen_by_message(msgs, vocabulary)),
    }  # fmt: skip


def _unseen_by_message(msgs, vocabulary):
    return [(sum(int(x) not in vocabulary for x in m[3]), len(m[3])) for m in msgs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ref, true_labels, vocabulary = _reference(rng)
    limits = DriftSettings()
    # Detection needs the floor off for the baseline: min_predictions 1 lets every day count.
    limits = dataclasses.replace(limits, min_predictions=1)
    print(f"defaults: {DriftSettings()}")
    print(f"reference label mix worth {ref['label_effective_n']:.0f} messages")
    alone = dataclasses.replace(limits, combined=False)
    print(
        "| predictions/day | false alarms (shipped) | (no combined) | (no floor) | "
        "(true-label mix) | detected (shipped) | (no combined) | (no floor) | (true-label mix) "
        "| checks that fired on shifted days |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in (100, 300, 1000, 3000):
        rates = {}
        fired: Counter[str] = Counter()
        for shifted in (False, True):
            ours = single = base = old = 0
            for _ in range(args.days):
                day = _day(rng, n, shifted, ref, vocabulary)
                f = day_figures(day, ref, limits)
                ours += f["status"] == "drift"
                # Baselines: each check alone (no combined evidence); the configured thresholds
                # alone (rates: over the reference's); the shipped checks against the train
                # split's true-label mix.
                single += day_figures(day, ref, alone)["status"] == "drift"
                base += any(c["large"] for c in f["checks"] if c["configured"] is not None)
                old += day_figures(day, true_labels, limits)["status"] == "drift"
                if shifted:
                    fired.update(f["drifted"])
            rates[shifted] = [x / args.days for x in (ours, single, base, old)]
        false, found = ("| ".join(f"{x:.3f} " for x in r) for r in (rates[False], rates[True]))
        top = ", ".join(f"{k} {v / args.days:.0%}" for k, v in fired.most_common())
        print(f"| {n} | {false}| {found}| {top} |")


if __name__ == "__main__":
    main()
