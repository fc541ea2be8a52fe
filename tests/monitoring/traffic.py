"""Messages like the tiny model's snapshot (conftest's _text_for), and shifted ones: a new
intent in words its training never had."""

from __future__ import annotations

import random

LABELS = ("lost_card", "refund_request", "password_reset")
NOISE = "hello please help i need my the today thanks again with an issue about it".split()
# The shifted days' new intent, in words the model's training never had.
NEW_INTENT = "pizza pepperoni delivery tonight large crust order extra cheese".split()


def message(label: str, rng: random.Random) -> str:
    """A message like the snapshot's (conftest's _text_for): the label's words among filler."""
    words = label.split("_") + rng.sample(NOISE, k=rng.randint(2, 6))
    rng.shuffle(words)
    return " ".join(words)


def shifted_message(rng: random.Random) -> str:
    words = rng.sample(NEW_INTENT, k=rng.randint(3, 6)) + rng.sample(NOISE, k=2)
    rng.shuffle(words)
    return " ".join(words)


def day_texts(n: int, seed: int, new_share: float = 0.0) -> list[str]:
    rng = random.Random(seed)
    return [
        shifted_message(rng) if rng.random() < new_share else message(rng.choice(LABELS), rng)
        for _ in range(n)
    ]
