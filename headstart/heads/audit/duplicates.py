"""Near-duplicates within a collection and across its splits, from two signals.

* The embeddings: pairs whose cosine similarity is at least :data:`COSINE_DUPLICATE` (exact, faiss). They find
  near-copies of texts and of images re-drawn or re-shot; they cannot tell a re-saved copy from a look-alike (on
  the digits with MobileNetV2 ``features.13`` a re-saved copy has a cosine of 0.976-0.991 to its original and
  look-alikes by different writers reach 0.989; a 160 px JPEG copy of a 224 px photo can fall to 0.91).
* The pixels: a 64-bit perceptual (DCT) hash per image finds the candidate pairs, within :data:`HASH_BITS` bits
  (faiss' binary index, exact); a pair is a copy when the low frequencies the hash binarises also agree as
  numbers: the correlation of the two images' :data:`PIXEL_FREQUENCIES` x :data:`PIXEL_FREQUENCIES` lowest DCT
  frequencies (without the mean) of a :data:`PIXEL_SIDE` px grey thumbnail (area-averaged), at least
  :data:`PIXEL_CORRELATION`. Resizing and JPEG re-compression change the high frequencies and leave these;
  a different picture changes them. Calibrated on two cases (benchmarks/audit.py, docs/audit.md): the digits,
  where 25 copies (resized to 3/4 and back, JPEG 85) land 0-4 bits and correlation 0.9927-0.9973 from their
  originals and no other pair within 8 bits reaches 0.99 (the closest, 0.9898, are digits near-identical at 8x8
  pixels); and 224 px crops of photographs, where 30 copies (the same, or 160 px at JPEG 70, or doubled,
  brightened and at JPEG 60) land 0-8 bits and 0.98-1.0, and the pixels flag no other pair. The radius of 8
  bits only widens the search (no natural digit pair within 8 bits reaches 0.99); a copy 8% brighter with
  clipped highlights can fall below 0.99 and is missed.

Exact copies share an id (ids are content hashes) and are one row already, so they never pair up here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pandas as pd
import scipy.fft

from headstart.heads.neighbours import nearest

__all__ = [
    "COSINE_DUPLICATE", "HASH_BITS", "PAIR_COLUMNS", "PIXEL_CORRELATION", "PIXEL_FREQUENCIES", "PIXEL_SIDE",
    "PixelSignatures", "correlations", "find_duplicates", "hash_candidates", "hash_pairs", "leaked_rows",
    "low_frequencies", "pixel_pairs",
]  # fmt: skip

COSINE_DUPLICATE = 0.995
HASH_BITS = 8
PIXEL_CORRELATION = 0.99
PIXEL_SIDE = 32
PIXEL_FREQUENCIES = 8
QUERY_CHUNK = 1024  # rows whose hash candidates are searched and confirmed together
PAIR_CHUNK = 65536  # candidate pairs whose low frequencies are gathered together
PAIR_COLUMNS = [
    "id_a", "id_b", "path_a", "path_b", "split_a", "split_b", "similarity", "hash_bits", "pixel_correlation",
    "found_by",
]  # fmt: skip


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.array(X, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(X)
    return X


def low_frequencies(grey: np.ndarray, k: int = PIXEL_FREQUENCIES) -> np.ndarray:
    """The ``k x k`` lowest 2-D DCT frequencies of a grey thumbnail without the mean, as a unit float32 vector
    (zeros for a flat image): the dot product of two is the correlation of their low-pass-filtered pixels."""
    coeffs = scipy.fft.dctn(np.asarray(grey, dtype=np.float64), norm="ortho")[:k, :k].ravel()[1:]
    norm = float(np.linalg.norm(coeffs))
    return (coeffs / norm if norm > 1e-9 else np.zeros_like(coeffs)).astype(np.float32)


def embedding_pairs(neighbours: np.ndarray, similarities: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``, among each row's nearest neighbours at cosine ``>= threshold``."""
    rows, cols = np.nonzero((similarities >= threshold) & (neighbours >= 0))
    return {(min(int(i), int(j)), max(int(i), int(j))) for i, j in zip(rows, neighbours[rows, cols])}


def hash_candidates(
    hashes: Sequence[int | None], max_bits: int = HASH_BITS, chunk: int = QUERY_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(a, b, bits)`` arrays of the pairs of hashed rows ``a < b`` whose 64-bit hashes differ in at most
    ``max_bits`` bits (faiss' binary index, exact), ``chunk`` rows ``a`` at a time, so that the memory held
    is the candidates of one chunk, not of the whole table."""
    rows = np.array([i for i, h in enumerate(hashes) if h is not None], dtype=np.int64)
    if len(rows) < 2:
        return
    codes = np.array([int(hashes[i]) for i in rows], dtype=np.uint64).view(np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    for start in range(0, len(rows), chunk):
        limits, distances, found = index.range_search(codes[start : start + chunk], max_bits + 1)  # below radius
        query = np.repeat(np.arange(start, start + len(limits) - 1), np.diff(limits).astype(np.int64))
        keep = found > query
        yield rows[query[keep]], rows[found[keep]], distances[keep].astype(np.int64)


def hash_pairs(hashes: Sequence[int | None], max_bits: int = HASH_BITS) -> dict[tuple[int, int], int]:
    """``{(i, j): bits}`` for every pair of hashed rows whose 64-bit hashes differ in at most ``max_bits`` bits
    (every candidate at once: for calibrating on a small table; :func:`pixel_pairs` confirms them chunk by chunk)."""
    pairs: dict[tuple[int, int], int] = {}
    for a, b, bits in hash_candidates(hashes, max_bits):
        pairs.update(zip(zip(a.tolist(), b.tolist()), bits.tolist()))
    return pairs


def correlations(low: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = PAIR_CHUNK) -> np.ndarray:
    """``low[a[n]] @ low[b[n]]`` for each pair ``n``, gathering ``chunk`` pairs' rows at a time."""
    out = np.empty(len(a), dtype=low.dtype)
    for start in range(0, len(a), chunk):
        part = slice(start, start + chunk)
        out[part] = np.einsum("ij,ij->i", low[a[part]], low[b[part]])
    return out


@dataclass(frozen=True)
class PixelSignatures:
    """Per row of a table: the 64-bit perceptual hash (``None`` for a row without an image) and
    :func:`low_frequencies` of its grey thumbnail (zeros without an image)."""

    hashes: Sequence[int | None]
    low: np.ndarray


def pixel_pairs(
    pixels: PixelSignatures, max_bits: int = HASH_BITS, correlation: float = PIXEL_CORRELATION
) -> set[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``, within ``max_bits`` hash bits whose low frequencies correlate at least
    ``correlation``. The candidates are confirmed as they are found, :data:`QUERY_CHUNK` rows at a time, so
    memory grows with the pairs kept, not with the candidates (millions on a large table of similar images)."""
    pairs: set[tuple[int, int]] = set()
    for a, b, _ in hash_candidates(pixels.hashes, max_bits):
        keep = correlations(pixels.low, a, b) >= correlation
        pairs.update(zip(a[keep].tolist(), b[keep].tolist()))
    return pairs


def _bits(hashes: Sequence[int | None], a: np.ndarray, b: np.ndarray) -> list[int]:
    return [-1 if hashes[i] is None or hashes[j] is None else (int(hashes[i]) ^ int(hashes[j])).bit_count()
            for i, j in zip(a, b)]  # fmt: skip


def find_duplicates(
    frame: pd.DataFrame,
    X: np.ndarray,
    pixels: PixelSignatures | None = None,
    *,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    cosine: float = COSINE_DUPLICATE,
    max_bits: int = HASH_BITS,
    correlation: float = PIXEL_CORRELATION,
    k: int = 10,
) -> pd.DataFrame:
    """One row per flagged pair (``PAIR_COLUMNS``), the most similar first.

    A pair is flagged when its embeddings' cosine is at least ``cosine``, or its hashes are within ``max_bits``
    bits and its low frequencies correlate at least ``correlation`` (see the module's docstring).
    ``neighbours`` is ``(indices, similarities)`` of every row's nearest other rows (computed here when absent).
    ``found_by`` says which signal flagged the pair: ``pixels``, ``embedding`` or ``both``; ``hash_bits`` is -1
    and ``pixel_correlation`` NaN for a pair without two images (texts).
    """
    if neighbours is None:
        neighbours = nearest(X, X, min(k, max(len(X) - 1, 1)), exclude=list(range(len(X))))
    by_embedding = embedding_pairs(*neighbours, cosine)
    by_pixels = pixel_pairs(pixels, max_bits, correlation) if pixels is not None else set()
    pairs = sorted(by_embedding | by_pixels)
    if not pairs:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in PAIR_COLUMNS})
    a, b = (np.array(side, dtype=np.int64) for side in zip(*pairs))
    unit = _unit(X)
    similarity = np.einsum("ij,ij->i", unit[a], unit[b])
    bits = _bits(pixels.hashes, a, b) if pixels is not None else [-1] * len(pairs)
    low = correlations(pixels.low, a, b) if pixels is not None else np.zeros(len(pairs))
    column = {c: frame[c].to_numpy(dtype=object) for c in ("id", "path", "split")}
    out = pd.DataFrame(
        {
            "id_a": column["id"][a], "id_b": column["id"][b],
            "path_a": column["path"][a], "path_b": column["path"][b],
            "split_a": column["split"][a], "split_b": column["split"][b],
            "similarity": np.round(similarity.astype(np.float64), 6),
            "hash_bits": bits,
            "pixel_correlation": np.where(np.array(bits) >= 0, np.round(low.astype(np.float64), 6), np.nan),
            "found_by": [_found_by(p in by_pixels, p in by_embedding) for p in pairs],
        }
    )  # fmt: skip
    return out.sort_values(["similarity", "id_a", "id_b"], ascending=[False, True, True], ignore_index=True)


_DTYPES = {c: "object" for c in PAIR_COLUMNS} | {"similarity": "float64", "hash_bits": "int64",
                                                 "pixel_correlation": "float64"}  # fmt: skip


def _found_by(pixels: bool, embedding: bool) -> str:
    return "both" if pixels and embedding else "pixels" if pixels else "embedding"


def leaked_rows(frame: pd.DataFrame, duplicates: pd.DataFrame) -> np.ndarray:
    """Positions of the test rows that have a flagged near-duplicate in train or val (what the head learnt from)."""
    seen = {"train", "val"}
    leaked = set()
    for id_a, id_b, split_a, split_b in duplicates[["id_a", "id_b", "split_a", "split_b"]].itertuples(index=False):
        if split_a == "test" and split_b in seen:
            leaked.add(id_a)
        if split_b == "test" and split_a in seen:
            leaked.add(id_b)
    mask = (frame["split"].to_numpy() == "test") & frame["id"].isin(leaked).to_numpy()
    return np.flatnonzero(mask)
