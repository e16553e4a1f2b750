"""The append-only cache: torn tails from a killed run are skipped, damage is reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.features.cache import CacheError, EmbeddingCache


def _fill(cache: EmbeddingCache, batches: int = 3, n: int = 4, dim: int = 5) -> np.ndarray:
    vectors = np.arange(batches * n * dim, dtype=np.float32).reshape(batches * n, dim)
    with cache.open_segment() as segment:
        for b in range(batches):
            rows = slice(b * n, (b + 1) * n)
            ids = [f"id{i:03d}" for i in range(rows.start, rows.stop)]
            segment.append(ids, {"node|avg": vectors[rows]}, failures=[(f"bad{b}", "truncated")])
    return vectors


def test_records_round_trip_and_failures_are_remembered(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp")
    vectors = _fill(cache)
    cache.scan()
    np.testing.assert_array_equal(cache.vectors("node|avg", ["id005", "id000"]), vectors[[5, 0]])
    assert cache.failure("bad1") == "truncated"
    assert cache.missing(["id000", "id999", "bad0"], ["node|avg"]) == ["id999"]
    assert cache.missing(["id000"], ["node|avg", "other|avg"]) == ["id000"]


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp")
    _fill(cache)
    (segment,) = cache.segments()
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 30])  # a kill in the middle of the last write
    cache.scan()
    assert len(cache.torn) == 1
    assert cache.missing([f"id{i:03d}" for i in range(12)], ["node|avg"]) == [f"id{i:03d}" for i in range(8, 12)]


def test_a_damaged_payload_is_reported_with_the_file_to_delete(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp")
    _fill(cache, batches=1)
    (segment,) = cache.segments()
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    cache.scan()
    with pytest.raises(CacheError, match=f"{segment.name} is damaged .*delete that file"):
        cache.vectors("node|avg", ["id000"])
