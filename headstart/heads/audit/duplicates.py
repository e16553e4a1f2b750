"""Near-duplicates within a collection and across its splits, from two signals.

* The embeddings: pairs whose cosine similarity is at least :data:`COSINE_DUPLICATE` (exact, faiss). On the
  digits with MobileNetV2 ``features.13`` a re-saved copy has a cosine of 0.981-0.99 to its original, but
  images of the same digit by different writers reach 0.989, so the embeddings alone flag only the pairs that
  are practically the same point; they are what finds near-copies of texts and of images re-drawn or re-shot.
* The pixels and the embeddings together: a 64-bit perceptual (DCT) hash per image, pairs within
  :data:`HASH_BITS` bits (faiss' binary index, exact) whose cosine is also at least :data:`HASH_COSINE`.
  Calibrated on the digits at 64 px with MobileNetV2 ``features.13`` (benchmarks/audit.py): 25 test images
  resized to 3/4 and back and re-encoded as JPEG land 0-4 bits and cosine 0.976-0.991 from their originals;
  of the natural pairs, 94 are within 4 bits, 8 of them also at cosine >= 0.975 (digits by different writers
  that are near-identical at 8x8 pixels). The hash alone is too coarse on such small images, the cosine alone
  cannot tell a copy from a look-alike; together they flag every planted copy and few natural pairs.

Exact copies share an id (ids are content hashes) and are one row already, so they never pair up here.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import pandas as pd

from headstart.heads.neighbours import nearest

__all__ = [
    "COSINE_DUPLICATE", "HASH_BITS", "HASH_COSINE", "PAIR_COLUMNS", "find_duplicates", "hash_pairs", "leaked_rows",
]  # fmt: skip

COSINE_DUPLICATE = 0.995
HASH_BITS = 4
HASH_COSINE = 0.975
PAIR_COLUMNS = ["id_a", "id_b", "path_a", "path_b", "split_a", "split_b", "similarity", "hash_bits", "found_by"]


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.array(X, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(X)
    return X


def embedding_pairs(neighbours: np.ndarray, similarities: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Row pairs ``(i, j)``, ``i < j``, among each row's nearest neighbours at cosine ``>= threshold``."""
    rows, cols = np.nonzero((similarities >= threshold) & (neighbours >= 0))
    return {(min(int(i), int(j)), max(int(i), int(j))) for i, j in zip(rows, neighbours[rows, cols])}


def hash_pairs(hashes: Sequence[int | None], max_bits: int = HASH_BITS) -> dict[tuple[int, int], int]:
    """``{(i, j): bits}`` for every pair of hashed rows whose 64-bit hashes differ in at most ``max_bits`` bits."""
    rows = np.array([i for i, h in enumerate(hashes) if h is not None], dtype=np.int64)
    if len(rows) < 2:
        return {}
    codes = np.array([int(hashes[i]) for i in rows], dtype=np.uint64).view(np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    limits, distances, found = index.range_search(codes, max_bits + 1)  # strictly below the radius
    pairs: dict[tuple[int, int], int] = {}
    for q in range(len(rows)):
        for d, j in zip(distances[limits[q] : limits[q + 1]], found[limits[q] : limits[q + 1]]):
            if j > q:
                pairs[(int(rows[q]), int(rows[j]))] = int(d)
    return pairs


def find_duplicates(
    frame: pd.DataFrame,
    X: np.ndarray,
    hashes: Sequence[int | None] | None = None,
    *,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    cosine: float = COSINE_DUPLICATE,
    max_bits: int = HASH_BITS,
    hash_cosine: float = HASH_COSINE,
    k: int = 10,
) -> pd.DataFrame:
    """One row per flagged pair (``PAIR_COLUMNS``), the most similar first.

    A pair is flagged when its cosine is at least ``cosine``, or its hashes are within ``max_bits`` bits and its
    cosine is at least ``hash_cosine``. ``neighbours`` is ``(indices, similarities)`` of every row's nearest
    other rows (computed here when absent);
    ``found_by`` says which signal flagged the pair: ``pixels``, ``embedding`` or ``both``; ``hash_bits`` is -1
    for a pair without two hashes (texts).
    """
    if neighbours is None:
        neighbours = nearest(X, X, min(k, max(len(X) - 1, 1)), exclude=list(range(len(X))))
    by_embedding = embedding_pairs(*neighbours, cosine)
    unit = _unit(X)
    by_pixels = hash_pairs(hashes, max_bits) if hashes is not None else {}
    by_pixels = {(i, j): bits for (i, j), bits in by_pixels.items() if float(unit[i] @ unit[j]) >= hash_cosine}
    pairs = sorted(by_embedding | set(by_pixels))
    if not pairs:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in PAIR_COLUMNS})
    a, b = (np.array(side, dtype=np.int64) for side in zip(*pairs))
    similarity = np.einsum("ij,ij->i", unit[a], unit[b])
    column = {c: frame[c].to_numpy(dtype=object) for c in ("id", "path", "split")}
    out = pd.DataFrame(
        {
            "id_a": column["id"][a], "id_b": column["id"][b],
            "path_a": column["path"][a], "path_b": column["path"][b],
            "split_a": column["split"][a], "split_b": column["split"][b],
            "similarity": np.round(similarity.astype(np.float64), 6),
            "hash_bits": [by_pixels.get(p, -1) for p in pairs],
            "found_by": [_found_by(p in by_pixels, p in by_embedding) for p in pairs],
        }
    )  # fmt: skip
    return out.sort_values(["similarity", "id_a", "id_b"], ascending=[False, True, True], ignore_index=True)


_DTYPES = {c: "object" for c in PAIR_COLUMNS} | {"similarity": "float64", "hash_bits": "int64"}


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
