"""k-nearest-neighbour classification on faiss, as in DINO's k-NN evaluation.

Cosine similarity (inner product of L2-normalised vectors, the default) or Euclidean distance; votes are
uniform, inverse-distance, or ``exp(similarity / T)`` (DINO, T = 0.07). The exact index is
``IndexFlatIP`` / ``IndexFlatL2``; ``index="ivf"`` (faiss k-means cells, scanned as batched matrix products,
:mod:`headstart.heads.ivf`) trades a little agreement for a lot of speed on large training sets.

>>> import numpy as np
>>> X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
>>> KNNClassifier(k=2).fit(X, ["a", "a", "b", "b"]).predict([[1, 0.05]]).tolist()
['a']
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from headstart.heads._checks import check_classes
from headstart.heads.ivf import BatchedIVF

__all__ = ["INDEXES", "METRICS", "REFINES", "REFINE_CANDIDATES", "WEIGHTINGS", "KNNClassifier", "bytes_per_vector"]

# the allowed values of the parameters that name a choice (the knn head declares them from these)
METRICS = ("cosine", "l2")
WEIGHTINGS = ("uniform", "distance", "temperature")
INDEXES = ("flat", "ivf", "ivfpq")
REFINES = ("sq8", "flat", "none")
REFINE_CANDIDATES = 320  # the PQ codes' best this many (4 x k beyond), ranked again by the refinement: the same
# pool whatever k is asked for, so the first j neighbours do not depend on k (a k grid searched once at its largest)


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """k-NN classifier backed by a faiss index.

    Parameters
    ----------
    k : int, default=20
        Neighbours that vote (capped at the number of training vectors).
    metric : {"cosine", "l2"}, default="cosine"
    weighting : {"uniform", "distance", "temperature"}, default="temperature"
        ``temperature`` weighs a neighbour by ``exp(sim / temperature)`` (for ``l2``, ``exp(-dist / T)``).
    temperature : float, default=0.07
    index : {"flat", "ivf", "ivfpq"}, default="flat"
        ``flat`` is exact; ``ivf`` is an inverted-file index with ``nlist`` cells, ``nprobe`` searched.
    nlist : int or None, default=None
        IVF cells; ``None`` picks about ``sqrt(n)`` (at least 39 training vectors per cell). The cells are
        trained (k-means) on a sample of at most 40 vectors per cell.
    nprobe : int or None, default=None
        IVF cells searched per query; ``None`` picks ``nlist // 25`` (at least 4): on clustered data about 99%
        of predictions agree with the exact search. It can be changed after fitting.
    pq_m : int or None, default=None
        ``index="ivfpq"`` (faiss ``IndexIVFPQ``, for training sets beyond memory): bytes per stored vector,
        a divisor of the width; ``None`` picks about one per 8 dimensions. Its recall against the exact
        index is measured by :func:`headstart.heads.knn_head.knn_recall`. The fit stage and ``headstart fit``
        evaluate a ``knn`` head with ``index: ivfpq`` on its table chunk by chunk, never loaded whole
        (:mod:`headstart.heads.evaluate_stream`). Fewer than 78 training rows (a few-shot subset) are too few
        to train the codes: they get the exact index.
    refine : {"sq8", "flat", "none"}, default="sq8"
        ``index="ivfpq"`` only: the candidates the PQ codes find (``REFINE_CANDIDATES``, 320) are ranked
        again on a finer copy of every vector, ``sq8`` (one byte per dimension: ``pq_m + width`` bytes per
        vector in all) or ``flat`` (the float32 vectors), as faiss's ``IndexRefine``. PQ codes alone rank
        neighbours coarsely: recall@10 against exact search on MobileNetV2 embeddings of digits 0.45 (96-d) and
        0.78 (1280-d) with PQ codes alone (``none``), 0.97 and 0.98 with ``sq8``.
    class_weight : {None, "balanced"} or dict, default=None
        ``balanced`` multiplies each neighbour's vote by ``n / (n_classes x count of its class)``, so a rare
        class is not outvoted just because it has few images in the index.
    """

    def __init__(
        self,
        k: int = 20,
        metric: str = "cosine",
        weighting: str = "temperature",
        temperature: float = 0.07,
        index: str = "flat",
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        refine: str = "sq8",
        class_weight: str | None = None,
    ) -> None:
        self.k = k
        self.metric = metric
        self.weighting = weighting
        self.temperature = temperature
        self.index = index
        self.nlist = nlist
        self.nprobe = nprobe
        self.pq_m = pq_m
        self.refine = refine
        self.class_weight = class_weight

    def _check_params(self) -> None:
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {self.index!r}")
        if self.refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {self.refine!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if not (self.class_weight in (None, "balanced") or isinstance(self.class_weight, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}")

    def _vote_weights(self) -> np.ndarray:
        """Per-class vote weights: all 1, or inverse to the class's share of the index (``balanced``)."""
        counts = np.bincount(self._y, minlength=len(self.classes_)).astype(np.float64)
        if isinstance(self.class_weight, dict):
            return np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()])
        if self.class_weight != "balanced":
            return np.ones_like(counts)
        return len(self._y) / (len(self.classes_) * np.maximum(counts, 1.0))

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.metric == "cosine":
            X = X.copy()
            faiss.normalize_L2(X)
        return X

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNClassifier:
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        check_classes(y)
        self.classes_, self._y = np.unique(y, return_inverse=True)
        vectors = self._prepare(X)
        n, d = vectors.shape
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if self.index == "ivf":
            nlist = self.nlist or max(1, min(int(math.sqrt(n)), n // 39))
            index: Any = BatchedIVF(d, min(nlist, n), "ip" if metric == faiss.METRIC_INNER_PRODUCT else "l2")
            index.train(vectors)
        elif self.index == "ivfpq":
            index = _ivfpq(vectors, metric, self.nlist, self.pq_m, self.refine)
        else:
            index = faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
        index.add(vectors)
        self.index_ = index
        return self

    def add(self, X: np.ndarray, y: np.ndarray) -> KNNClassifier:
        """Add labelled vectors to the fitted index (new classes are allowed); no refit, nothing forgotten."""
        check_is_fitted(self, "index_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        y = np.asarray(y)
        known = list(self.classes_)
        classes = np.unique(np.concatenate([self.classes_, y]))
        if len(classes) != len(known):
            remap = np.searchsorted(classes, self.classes_)
            self._y = remap[self._y]
            self.classes_ = classes
        self._y = np.concatenate([self._y, np.searchsorted(self.classes_, y)])
        self.index_.add(self._prepare(X))
        return self

    def kneighbors(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Similarities (cosine) or distances (l2, not squared) and indices of the nearest neighbours."""
        check_is_fitted(self, "index_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        k = min(k or self.k, self.index_.ntotal)
        if isinstance(self.index_, BatchedIVF):
            nprobe = self.nprobe or max(4, self.index_.nlist // 25)  # a search-time setting
            scores, idx = self.index_.search(self._prepare(X), k, nprobe)
        elif isinstance(self.index_, (faiss.IndexIVF, faiss.IndexRefine)):
            ivf = faiss.extract_index_ivf(self.index_)
            ivf.nprobe = self.nprobe or max(8, ivf.nlist // 16)
            if isinstance(self.index_, faiss.IndexRefine):  # faiss takes int(k x k_factor) candidates
                self.index_.k_factor = (max(REFINE_CANDIDATES, 4 * k) + 0.5) / k
            scores, idx = self.index_.search(self._prepare(X), k)
        else:
            scores, idx = self.index_.search(self._prepare(X), k)
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0.0))
        return scores, idx

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "index_")
        scores, idx = self.kneighbors(X)
        return self._vote(scores, idx)

    def _vote(self, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        valid = idx >= 0  # an IVF search can come back short of k
        if self.weighting == "uniform":
            weights = np.ones_like(scores, dtype=np.float64)
        elif self.weighting == "distance":
            distance = 1.0 - scores if self.metric == "cosine" else scores
            weights = 1.0 / np.maximum(distance.astype(np.float64), 1e-12)
        else:
            logits = scores / self.temperature if self.metric == "cosine" else -scores / self.temperature
            logits = logits.astype(np.float64)
            weights = np.exp(logits - np.where(valid, logits, -np.inf).max(axis=1, keepdims=True))
        weights = np.where(valid, weights, 0.0)
        votes = np.zeros((len(scores), len(self.classes_)), dtype=np.float64)
        labels = self._y[np.where(valid, idx, 0)]
        weights = weights * self._vote_weights()[labels]
        np.add.at(votes, (np.repeat(np.arange(len(scores)), idx.shape[1]), labels.ravel()), weights.ravel())
        totals = votes.sum(axis=1, keepdims=True)
        empty = totals[:, 0] == 0
        votes[empty] = 1.0
        totals[empty] = len(self.classes_)
        return votes / totals

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "index_")
        # ties go to the first class in sorted order, as in scikit-learn's KNeighborsClassifier
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self) -> dict:
        # A flat index is saved as its vectors and rebuilt on load; any other faiss index as faiss's bytes.
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the instance's own dict
        index = state.get("index_")
        if isinstance(index, (faiss.IndexFlatIP, faiss.IndexFlatL2)):
            kind = "flat-ip" if isinstance(index, faiss.IndexFlatIP) else "flat-l2"
            state["index_"] = (kind, index.reconstruct_n(0, index.ntotal))
        elif isinstance(index, faiss.Index):
            state["index_"] = ("faiss", faiss.serialize_index(index))
        return state

    def __setstate__(self, state: dict) -> None:
        index = state.get("index_")
        if isinstance(index, tuple) and index[0] in ("flat-ip", "flat-l2"):
            vectors = np.ascontiguousarray(index[1], dtype=np.float32)
            flat = faiss.IndexFlatIP if index[0] == "flat-ip" else faiss.IndexFlatL2
            state["index_"] = flat(vectors.shape[1])
            state["index_"].add(vectors)
        elif isinstance(index, tuple) and index[0] == "faiss":
            state["index_"] = faiss.deserialize_index(np.ascontiguousarray(index[1], dtype=np.uint8))
        super().__setstate__(state)


def bytes_per_vector(index: Any) -> int:
    """What a fitted index keeps per vector: its codes (PQ and refinement), or the float32 vector."""
    if isinstance(index, faiss.IndexRefine):
        return bytes_per_vector(faiss.downcast_index(index.base_index)) + bytes_per_vector(
            faiss.downcast_index(index.refine_index)
        )
    return int(index.code_size) if hasattr(index, "code_size") else 4 * int(index.d)


def _ivfpq(vectors: np.ndarray, metric: int, nlist: int | None, pq_m: int | None, refine: str = "none") -> Any:
    """A trained, empty faiss ``IVF<nlist>,PQ<m>x<bits>`` index (with ``,Refine(SQ8)`` or ``,RFlat``): cells,
    codebooks and the refinement's quantiser from ``vectors``."""
    n, d = vectors.shape
    if n < 78:  # too few rows to train even 2 centroids per code (39 each): exact search, as small as it gets
        return faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
    nlist = min(nlist or max(1, min(4 * int(math.sqrt(n)), n // 39)), n)
    m = pq_m or next(m for m in range(max(1, d // 8), 0, -1) if d % m == 0)
    if d % m:
        raise ValueError(f"pq_m={m} must divide the embedding width {d}")
    bits = max(1, min(8, int(math.log2(max(n // 39, 2)))))  # faiss wants 39 training vectors per centroid
    suffix = {"none": "", "sq8": ",Refine(SQ8)", "flat": ",RFlat"}[refine]
    index = faiss.index_factory(d, f"IVF{nlist},PQ{m}x{bits}{suffix}", metric)
    index.train(vectors)
    return index
