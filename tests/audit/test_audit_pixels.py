"""The pixel duplicate search in chunks finds exactly the pairs a search over all pairs at once finds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from headstart.heads.audit.duplicates import (  # noqa: E402
    PixelSignatures, correlations, hash_candidates, pixel_pairs,
)  # fmt: skip


def _signatures(n: int = 300, seed: int = 0) -> PixelSignatures:
    """Hashes in a few tight families (bits flipped from a shared code) and low frequencies near each family's."""
    rng = np.random.default_rng(seed)
    family = rng.integers(0, 6, n)
    codes = rng.integers(0, 2**63, 6, dtype=np.uint64)
    flips = (rng.random((n, 64)) < 0.04) @ (np.uint64(1) << np.arange(64, dtype=np.uint64))
    hashes: list[int | None] = [int(codes[f] ^ np.uint64(x)) for f, x in zip(family, flips)]
    hashes[5] = hashes[17] = None  # rows without an image
    low = rng.normal(size=(6, 63))[family] + rng.normal(scale=0.15, size=(n, 63))
    low = (low / np.linalg.norm(low, axis=1, keepdims=True)).astype(np.float32)
    return PixelSignatures(hashes, low)


def test_hash_candidates_in_chunks_are_every_close_pair_once() -> None:
    pixels = _signatures()
    found = {(a, b): d for chunk in hash_candidates(pixels.hashes, 6, chunk=7)
             for a, b, d in zip(*(part.tolist() for part in chunk))}  # fmt: skip
    rows = [i for i, h in enumerate(pixels.hashes) if h is not None]
    expected = {(i, j): (pixels.hashes[i] ^ pixels.hashes[j]).bit_count() for i in rows for j in rows if i < j}
    expected = {pair: bits for pair, bits in expected.items() if bits <= 6}
    assert len(expected) > 100
    assert found == expected


def test_pixel_pairs_are_the_close_hashes_whose_low_frequencies_agree() -> None:
    pixels = _signatures()
    a, b = np.triu_indices(len(pixels.low), 1)
    every = np.einsum("ij,ij->i", pixels.low[a], pixels.low[b])
    assert np.array_equal(correlations(pixels.low, a, b, chunk=100), every)
    close = {pair for chunk in hash_candidates(pixels.hashes, 6) for pair in zip(chunk[0].tolist(), chunk[1].tolist())}
    agree = {(i, j) for i, j, c in zip(a.tolist(), b.tolist(), every.tolist()) if c >= 0.97}
    pairs = pixel_pairs(pixels, 6, 0.97)
    assert 0 < len(pairs) < len(close)
    assert pairs == close & agree
