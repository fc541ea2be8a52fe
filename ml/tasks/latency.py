"""How fast a model answers, timed one way for every task type.

Per message: each text on its own (batch 1, what a router or an assistant pays per turn), after
one warm-up call that pays lazy initialisation, summarised as p50 and p95 milliseconds. In
bulk (intent): texts per second through one large call (what a backfill scoring job gets).
The registry compares versions by these figures' names, so the names are built here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

# How many texts to time one at a time: enough for a p95, cheap on CPU.
LATENCY_SAMPLES = 40
# How many texts to push through one call for the throughput figure.
THROUGHPUT_SAMPLES = 256

# Called with a list of texts; what it returns is not looked at.
Call = Callable[[list[str]], object]


def per_message_ms(
    call: Call, texts: Sequence[str], samples: int = LATENCY_SAMPLES, prefix: str = "latency_"
) -> dict[str, float]:
    """p50 and p95 milliseconds of `call([text])` over the first `samples` texts, as
    `{prefix}ms_p50` and `{prefix}ms_p95` (latency_ms_p50 by default); {} without texts."""
    single = list(texts[:samples])
    if not single:
        return {}
    call(single[:1])  # warm-up: the first call pays lazy initialisation
    timings = []
    for text in single:
        tick = time.perf_counter()
        call([text])
        timings.append((time.perf_counter() - tick) * 1000)
    return {
        f"{prefix}ms_p50": round(float(np.percentile(timings, 50)), 3),
        f"{prefix}ms_p95": round(float(np.percentile(timings, 95)), 3),
    }


def throughput_per_s(call: Call, texts: Sequence[str], samples: int = THROUGHPUT_SAMPLES) -> float:
    """Texts per second through one `call` on `samples` texts (`texts` repeated to fill it);
    0.0 without texts."""
    if not texts:
        return 0.0
    bulk = (list(texts) * (samples // len(texts) + 1))[:samples]
    tick = time.perf_counter()
    call(bulk)
    return round(len(bulk) / (time.perf_counter() - tick), 1)
