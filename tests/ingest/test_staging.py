"""The staging buckets: a stable, even spread of conversation ids (ml/ingest/staging.py)."""

import numpy as np
import pyarrow as pa

from ml.ingest.staging import bucket_count, buckets_of


def test_bucket_of_an_id_never_changes() -> None:
    # A day over 256 MB is ordered by (bucket, id): another hash would change its bytes.
    ids = pa.array(["c00000001", "c00000002", "2b7e1f0c-5a5e-4c1e-9d1a-3f0b6c2d9e11", "x", ""])
    assert buckets_of(ids, 7).tolist() == [1, 4, 6, 1, 2]
    assert buckets_of(pa.chunked_array([ids[:2], ids[2:]]), 7).tolist() == [1, 4, 6, 1, 2]
    assert buckets_of(ids, 1).tolist() == [0] * 5


def test_ids_spread_evenly_over_buckets() -> None:
    for shape in ("c{:08d}", "2026-11-22-chat-{}", "{}-ticket"):
        ids = pa.array([shape.format(i) for i in range(80_000)])
        counts = np.bincount(buckets_of(ids, 8), minlength=8)
        assert counts.min() > 0.9 * 10_000 and counts.max() < 1.1 * 10_000, (shape, counts)


def test_bucket_count_follows_input_size() -> None:
    assert bucket_count(0) == 1 and bucket_count(256 << 20) == 1
    assert bucket_count((256 << 20) + 1) == 2 and bucket_count(1200 << 20) == 5
