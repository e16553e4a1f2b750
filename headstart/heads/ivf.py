"""An inverted-file (IVF) index whose scan is batched into matrix products.

faiss trains the cells (k-means) and assigns vectors and queries to them; the probed cells are then scanned
cell by cell, all the queries that probe a cell at once, as one matrix product (BLAS). faiss's own
``IndexIVFFlat`` scans query by query, streaming each probed cell from memory once per query; for the large
query batches a head sees (a whole test split), grouping by cell reads each cell once per batch instead.
That is why this scan is hand-written rather than faiss's ``IndexIVFFlat`` (``benchmarks/knn.py`` compares
them).

The interface follows faiss's: ``search(queries, k) -> (scores, ids)``, with ``ids == -1`` where fewer than
``k`` candidates were found, inner products for ``"ip"`` and squared distances for ``"l2"``.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["BatchedIVF"]

_SAMPLE_PER_CELL = 40


class BatchedIVF:
    """Cells from k-means; vectors stored cell after cell, so each cell is one contiguous block.

    >>> rng = np.random.default_rng(0)
    >>> index = BatchedIVF(dim=8, nlist=4, metric="ip")
    >>> vectors = rng.standard_normal((400, 8), dtype=np.float32)
    >>> index.train(vectors); index.add(vectors)
    >>> index.search(rng.standard_normal((3, 8), dtype=np.float32), k=5, nprobe=4)[1].shape
    (3, 5)
    """

    def __init__(self, dim: int, nlist: int, metric: str = "ip") -> None:
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
        self.dim = dim
        self.nlist = nlist
        self.metric = metric
        self.centroids = np.zeros((0, dim), dtype=np.float32)
        self.vectors = np.zeros((0, dim), dtype=np.float32)  # cell after cell
        self.ids = np.zeros(0, dtype=np.int64)  # the position each stored vector was added at
        self.offsets = np.zeros(nlist + 1, dtype=np.int64)

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def train(self, vectors: np.ndarray, seed: int = 1234) -> None:
        """k-means on (a sample of at most 40 vectors per cell of) ``vectors``; faiss asks for at least 39."""
        n = len(vectors)
        sample = vectors
        if n > _SAMPLE_PER_CELL * self.nlist:
            rows = np.random.default_rng(seed).choice(n, _SAMPLE_PER_CELL * self.nlist, replace=False)
            sample = vectors[np.sort(rows)]
        kmeans = faiss.Kmeans(
            self.dim,
            self.nlist,
            niter=10,
            seed=seed,
            spherical=self.metric == "ip",
            min_points_per_centroid=1,
            max_points_per_centroid=_SAMPLE_PER_CELL,
        )
        kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)

    def _cells(self, vectors: np.ndarray, nprobe: int) -> np.ndarray:
        quantizer = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        quantizer.add(self.centroids)
        return quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), nprobe)[1]

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (their ids continue from :attr:`ntotal`)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        cells = np.concatenate([np.repeat(np.arange(self.nlist), np.diff(self.offsets)), self._cells(vectors, 1)[:, 0]])
        ids = np.concatenate([self.ids, np.arange(self.ntotal, self.ntotal + len(vectors))])
        stacked = np.concatenate([self.vectors, vectors])
        order = np.argsort(cells, kind="stable")
        self.vectors = np.ascontiguousarray(stacked[order])
        self.ids = ids[order]
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=self.nlist))]).astype(np.int64)

    def search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best of the vectors in each query's ``nprobe`` nearest cells."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        nq, nprobe = len(queries), max(1, min(nprobe, self.nlist))
        probe = self._cells(queries, nprobe)  # (nq, nprobe)
        higher_better = self.metric == "ip"
        worst = -np.inf if higher_better else np.inf
        cand_scores = np.full((nq, nprobe, k), worst, dtype=np.float32)
        cand_ids = np.full((nq, nprobe, k), -1, dtype=np.int64)
        pairs = np.argsort(probe.ravel(), kind="stable")  # (query, slot) pairs grouped by cell
        bounds = np.searchsorted(probe.ravel()[pairs], np.arange(self.nlist + 1))
        squared = (queries * queries).sum(1) if self.metric == "l2" else None
        for cell in range(self.nlist):
            lo, hi = self.offsets[cell], self.offsets[cell + 1]
            chosen = pairs[bounds[cell] : bounds[cell + 1]]
            if hi == lo or len(chosen) == 0:
                continue
            rows, slots = chosen // nprobe, chosen % nprobe
            block = self.vectors[lo:hi]
            scores = queries[rows] @ block.T  # one matrix product for every query probing this cell
            if not higher_better:
                scores = squared[rows, None] - 2 * scores + (block * block).sum(1)[None, :]
            top = min(k, hi - lo)
            if top < hi - lo:
                part = np.argpartition(-scores if higher_better else scores, top - 1, axis=1)[:, :top]
            else:
                part = np.broadcast_to(np.arange(top), (len(rows), top))
            cand_scores[rows, slots, :top] = np.take_along_axis(scores, part, axis=1)
            cand_ids[rows, slots, :top] = self.ids[lo + part]
        flat_scores = cand_scores.reshape(nq, -1)
        flat_ids = cand_ids.reshape(nq, -1)
        # best k of all candidates; among equal scores the lower id first, as faiss's flat index does
        key = -flat_scores if higher_better else flat_scores
        order = np.lexsort((np.where(flat_ids < 0, np.iinfo(np.int64).max, flat_ids), key), axis=1)[:, :k]
        return np.take_along_axis(flat_scores, order, axis=1), np.take_along_axis(flat_ids, order, axis=1)
