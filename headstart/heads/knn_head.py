"""The ``knn`` head as the registry knows it: its declared parameters, its builder and hooks, and its fit over a
table's chunks for training sets beyond memory.

The estimator is :class:`headstart.heads.knn.KNNClassifier`. Its hooks: a grid over ``k`` is searched once with
the largest k (every k votes from the same neighbours); a new domain's images join the index; with ``index:
ivfpq`` the head is fitted chunk by chunk (:func:`fit_knn_stream`: the index trained on a sample, then filled),
and :func:`knn_recall` measures its neighbours against exact search.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from headstart.heads.chunks import chunks
from headstart.heads.knn import INDEXES, METRICS, REFINES, WEIGHTINGS, KNNClassifier
from headstart.heads.params import CLASS_WEIGHT, HeadType, choice, class_weight, integer, positive
from headstart.heads.scoring import val_score

__all__ = ["KNN", "fit_knn_stream", "knn_recall"]


def _auto(value: Any) -> int | None:
    return None if value in (None, "auto") else int(value)


def _build(p: Mapping[str, Any], seed: int) -> KNNClassifier:
    return KNNClassifier(
        k=int(p["k"]),
        metric=p["metric"],
        weighting=p["weighting"],
        temperature=float(p["temperature"]),
        index=p["index"],
        nlist=_auto(p["nlist"]),
        nprobe=_auto(p["nprobe"]),
        pq_m=_auto(p["pq_m"]),
        refine=p["refine"],
        class_weight=class_weight(p),
    )


def _sweep(
    fixed: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str = "accuracy",
) -> Any:
    """One search with the largest k; every k votes from the same neighbours."""
    if set(grid) != {"k"}:
        return None
    ks = [int(k) for k in grid["k"]]
    estimator = _build({**KNN.defaults, **fixed, "k": max(ks)}, 0).fit(X_train, y_train)
    scores, idx = estimator.kneighbors(X_val, max(ks))
    accuracies = []
    for k in ks:
        proba = estimator._vote(scores[:, :k], idx[:, :k])
        y_pred = estimator.classes_[np.argmax(proba, axis=1)]
        accuracies.append(val_score(metric, y_val, y_pred, proba, estimator.classes_))
    return [{"k": k} for k in ks], accuracies, None


def _adapt(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
    return estimator.add(X, y)  # the target's images join the index


def _stream_fit(params: Mapping[str, Any], source: Any, seed: int, warm: Any = None) -> KNNClassifier:
    """The index trained on a sample of the chunks and filled chunk by chunk; a grid over k alone reuses the
    previous point's index (k is a search-time setting)."""
    wanted = _build(params, seed)
    if warm is not None and {**warm.get_params(), "k": wanted.k} == wanted.get_params():
        again = copy.copy(warm)
        again.k = wanted.k
        return again
    return fit_knn_stream(source, seed=seed, **wanted.get_params())


def fit_knn_stream(source: Any, sample_rows: int = 50_000, seed: int = 0, **params: Any) -> KNNClassifier:
    """The ``knn`` head over every chunk of ``source``: the index is trained on about ``sample_rows`` rows
    (whole chunks, spread over the table), then filled chunk by chunk."""
    rng = np.random.default_rng(seed)
    sizes = [len(source.read(0)[1])] if len(source) else [0]
    wanted = max(1, math.ceil(sample_rows / max(sizes[0], 1)))
    picks = np.sort(rng.choice(len(source), min(wanted, len(source)), replace=False))
    parts = list(chunks(source, picks))
    knn = KNNClassifier(**params).fit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    knn.index_.reset()  # keep the trained cells and codebooks, drop the sample's vectors
    knn._y = np.zeros(0, dtype=np.int64)
    for X, y in chunks(source):
        knn.add(X, y)
    return knn


def knn_recall(knn: KNNClassifier, reference: Any, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of ``knn``'s index against exact search over ``reference`` (the same rows, streamed)."""
    found = knn.kneighbors(queries, k)[1]
    Q = knn._prepare(queries)
    best_s = np.full((len(Q), k), -np.inf)
    best_i = np.full((len(Q), k), -1, dtype=np.int64)
    offset = 0
    for X, _ in chunks(reference):
        V = knn._prepare(X)
        s = Q @ V.T if knn.metric == "cosine" else -((Q * Q).sum(1)[:, None] - 2 * Q @ V.T + (V * V).sum(1)[None])
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, np.broadcast_to(np.arange(offset, offset + len(V)), s.shape)], axis=1)
        top = np.argpartition(-s_all, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1)
        offset += len(V)
    hits = [len(set(a[a >= 0]) & set(b)) for a, b in zip(found, best_i, strict=True)]
    return float(np.mean(hits)) / k


KNN = HeadType(
    "knn",
    "faiss k-NN, cosine by default, DINO temperature-weighted votes (k=20, T=0.07)",
    {
        "k": integer(20),
        "metric": choice("cosine", *METRICS),
        "weighting": choice("temperature", *WEIGHTINGS),
        "temperature": positive(0.07),
        "index": choice("flat", *INDEXES),
        "nlist": integer(None, none=True),
        "nprobe": integer(None, none=True),
        "pq_m": integer(None, none=True),
        "refine": choice("sq8", *REFINES),
        "class_weight": CLASS_WEIGHT,
    },
    _build,
    sweep=_sweep,
    adapt=_adapt,
    stream_fit=_stream_fit,
    quick=True,
    streams=lambda p: p["index"] == "ivfpq",  # the index for training sets beyond memory
)
