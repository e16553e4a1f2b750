"""Nearest neighbours in an embedding table: cosine similarity, exact, with faiss.

Search needs no labels, so it works on unlabelled collections (search, near-duplicates, browsing) as well as
on labelled tables. Vectors are L2-normalised and searched by inner product (``IndexFlatIP``), so a similarity
is the cosine in [-1, 1]; a zero vector has similarity 0 to everything.

Example
-------
>>> table = load_embeddings("embeddings/photos/mobilenet_v2/flatten.parquet")       # doctest: +SKIP
>>> nearest_rows(table, table.X[:1], ["first"], k=5, exclude=[0])                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import pandas as pd

from headstart.data.tables import EmbeddingTable

__all__ = ["nearest", "nearest_rows"]


def _normalised(X: np.ndarray) -> np.ndarray:
    X = np.array(X, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(X)
    return X


def nearest(
    X: np.ndarray, queries: np.ndarray, k: int, exclude: Sequence[int | None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``X`` most cosine-similar to each query: ``(indices, similarities)``, best first.

    ``exclude[q]`` is a row left out of query ``q``'s answer (the query's own row, when it comes from ``X``).
    Fewer than ``k`` rows give ``-1`` indices and ``nan`` similarities at the end.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    queries = np.atleast_2d(queries)
    if queries.shape[1] != X.shape[1]:
        raise ValueError(f"queries have width {queries.shape[1]} but the table has {X.shape[1]}")
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(_normalised(X))
    extra = 1 if exclude is not None and any(e is not None for e in exclude) else 0
    sims, idx = index.search(_normalised(queries), min(k + extra, len(X)))
    out_idx = np.full((len(queries), k), -1, dtype=np.int64)
    out_sim = np.full((len(queries), k), np.nan, dtype=np.float32)
    for q in range(len(queries)):
        keep = idx[q] >= 0
        if exclude is not None and exclude[q] is not None:
            keep &= idx[q] != exclude[q]
        found = idx[q][keep][:k]
        out_idx[q, : len(found)] = found
        out_sim[q, : len(found)] = sims[q][keep][:k]
    return out_idx, out_sim


def nearest_rows(
    table: EmbeddingTable,
    queries: np.ndarray,
    names: Sequence[str],
    k: int = 10,
    exclude: Sequence[int | None] | None = None,
) -> pd.DataFrame:
    """One row per (query, neighbour): ``query, rank, id, path, similarity`` (and ``label`` when labelled)."""
    idx, sims = nearest(table.X, queries, k, exclude)
    rows = []
    labelled = table.labelled
    for name, found, similarity in zip(names, idx, sims, strict=True):
        for rank, (i, s) in enumerate(zip(found, similarity, strict=True), start=1):
            if i < 0:
                break
            row = table.frame.iloc[int(i)]
            rows.append(
                {
                    "query": name,
                    "rank": rank,
                    "id": row["id"],
                    "path": row["path"],
                    "similarity": round(float(s), 6),
                    **({"label": row["label"]} if labelled else {}),
                }
            )
    columns = ["query", "rank", "id", "path", "similarity"] + (["label"] if labelled else [])
    return pd.DataFrame(rows, columns=columns)
