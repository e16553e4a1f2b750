"""Heads for tables bigger than memory: a linear probe trained over row groups, and k-NN on a compressed index.

Both read the table one row group (4,096 rows) at a time, shard after shard, through :class:`TableChunks`;
:class:`ArrayChunks` gives arrays in memory the same shape, so one code path serves both.

- :class:`StreamingLinearProbe`: multinomial logistic regression, the objective of the ``logreg`` head
  (``C * sum(log-loss) + ||W||^2 / 2`` on standardised features) minimised by mini-batch Adam over the row
  groups; :func:`fit_probe_stream` chooses C on val the way the ``logreg`` head does, then refits on
  train+val.
- :func:`fit_knn_stream`: the ``knn`` head with a faiss index trained on a sample and filled chunk by chunk;
  ``index: ivfpq`` keeps ``pq_m`` bytes per vector, and :func:`knn_recall` measures it against exact search.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 5)).astype(np.float32); y = (X[:, 0] > 0).astype(int)
>>> probe = StreamingLinearProbe(C=1.0, min_steps=300).fit(X, y)
>>> float(probe.score(X, y)) > 0.9
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from headstart.heads._checks import check_classes
from headstart.heads.knn import KNNClassifier
from headstart.heads.scoring import resolve_select_by, val_score

__all__ = [
    "ArrayChunks",
    "StreamingLinearProbe",
    "TableChunks",
    "fit_knn_stream",
    "fit_probe_stream",
    "knn_recall",
    "stream_accuracy",
    "stream_predictions",
    "stream_scores",
]

log = logging.getLogger(__name__)

CHUNK_ROWS = 4096


class ArrayChunks:
    """Arrays in memory, served in chunks of ``rows`` like a table's row groups."""

    def __init__(self, X: np.ndarray, y: np.ndarray, rows: int = CHUNK_ROWS) -> None:
        self.X, self.y, self.rows = X, np.asarray(y), rows

    def __len__(self) -> int:
        return -(-len(self.X) // self.rows)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.X[i * self.rows : (i + 1) * self.rows], self.y[i * self.rows : (i + 1) * self.rows]


class TableChunks:
    """The row groups of an embedding table (a file or a directory of shards), keeping ``splits`` only.

    Chunks read are kept in memory up to ``keep_bytes`` (256 MB by default), so a table that fits is read from
    disk once however many passes a fit makes; beyond that, every pass reads the chunks again.
    """

    def __init__(self, path: str | Path, splits: Sequence[str] | None = None, keep_bytes: int = 256 << 20) -> None:
        from headstart.data.tables import read_embedding_metadata, row_groups

        self.path = Path(path)
        self.splits = list(splits) if splits is not None else None
        self.dim = int(read_embedding_metadata(path)["dim"])
        self.groups = row_groups(path)
        self.keep_bytes = keep_bytes
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._kept_bytes = 0

    def __len__(self) -> int:
        return len(self.groups)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from headstart.data.tables import read_row_group

        if i in self._kept:
            return self._kept[i]
        frame, X = read_row_group(*self.groups[i], self.dim, self.splits)
        chunk = X, frame["label"].to_numpy(dtype=object).astype(str)
        if self._kept_bytes + X.nbytes <= self.keep_bytes:
            self._kept[i] = chunk
            self._kept_bytes += X.nbytes
        return chunk


def _chunks(source: Any, order: Sequence[int] | None = None) -> Any:
    for i in order if order is not None else range(len(source)):
        X, y = source.read(i)
        if len(X):
            yield X, y


class StreamingLinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression trained by mini-batch Adam, one chunk in memory at a time.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation, as in scikit-learn's ``LogisticRegression`` (weight decay ``1 / (C n)``).
    epochs : int, default=2
        Passes over the data; more are made when that is fewer than ``min_steps`` mini-batches.
    batch_size : int, default=256
    lr : float, default=0.01
        Adam's step size, decayed to zero along a cosine over the run.
    min_steps : int, default=3000
    seed : int, default=0
        Orders the chunks and the mini-batches inside them.
    class_weight : {None, "balanced"}, default=None
        ``balanced`` weighs each row's log-loss by ``n / (n_classes x count of its class)``, as the ``logreg``
        head's ``class_weight: balanced``.
    """

    def __init__(
        self,
        C: float = 1.0,
        epochs: int = 2,
        batch_size: int = 256,
        lr: float = 0.01,
        min_steps: int = 3000,
        seed: int = 0,
        class_weight: str | None = None,
    ) -> None:
        self.C = C
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.min_steps = min_steps
        self.seed = seed
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, y: np.ndarray) -> StreamingLinearProbe:
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        return self.fit_chunks(ArrayChunks(X, y))

    def fit_chunks(self, source: Any, warm_from: StreamingLinearProbe | None = None) -> StreamingLinearProbe:
        """Fit on every chunk of ``source`` (``len(source)``, ``source.read(i) -> (X, y)``)."""
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C!r}")
        if self.class_weight not in (None, "none", "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if warm_from is not None and hasattr(warm_from, "mean_"):
            self.classes_, self.mean_, self.scale_ = warm_from.classes_, warm_from.mean_, warm_from.scale_
            n, self.class_counts_ = warm_from.n_, warm_from.class_counts_
            W, b = warm_from.coef_std_.copy(), warm_from.intercept_.copy()
        else:
            self.classes_, self.mean_, self.scale_, n, self.class_counts_ = _moments(source)
            check_classes(self.classes_)
            W = np.zeros((len(self.mean_), len(self.classes_)))
            b = np.zeros(len(self.classes_))
        self.n_, self.n_features_in_ = n, len(self.mean_)
        rng = np.random.default_rng(self.seed)
        steps_per_epoch = sum(-(-len(source.read(i)[1]) // self.batch_size) for i in range(len(source))) or 1
        epochs = max(int(self.epochs), math.ceil(self.min_steps / steps_per_epoch))
        total, step = epochs * steps_per_epoch, 0
        decay = 1.0 / (self.C * n)
        weights = (
            n / (len(self.classes_) * np.maximum(self.class_counts_, 1.0))
            if self.class_weight == "balanced"
            else np.ones(len(self.classes_))
        )
        moments = [np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)]
        for _ in range(epochs):
            for X, y in _chunks(source, rng.permutation(len(source))):
                Z = (X - self.mean_) / self.scale_
                target = np.searchsorted(self.classes_, y)
                for rows in np.array_split(rng.permutation(len(Z)), -(-len(Z) // self.batch_size)):
                    step += 1
                    rate = self.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                    gW, gb = _gradient(Z[rows], target[rows], W, b, weights[target[rows]])
                    _adam(W, gW + decay * W, moments[0], moments[1], rate, step)
                    _adam(b, gb, moments[2], moments[3], rate, step)
        self.coef_std_, self.intercept_ = W, b
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_std_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return ((X - self.mean_) / self.scale_) @ self.coef_std_ + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = self.decision_function(X)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def _moments(source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Classes, mean, standard deviation, rows and rows per class in one pass (merged in float64)."""
    n, mean, m2, classes = 0, None, None, {}
    for X, y in _chunks(source):
        X = X.astype(np.float64)
        k, mu = len(X), X.mean(axis=0)
        dev = ((X - mu) ** 2).sum(axis=0)
        if mean is None:
            mean, m2 = mu, dev
        else:
            delta = mu - mean
            mean = mean + delta * k / (n + k)
            m2 = m2 + dev + delta**2 * n * k / (n + k)
        n += k
        for label, count in zip(*np.unique(y, return_counts=True), strict=True):
            classes[label] = classes.get(label, 0) + int(count)
    if mean is None:
        raise ValueError("no rows to fit on")
    std = np.sqrt(m2 / n)
    labels = sorted(classes)
    counts = np.array([classes[c] for c in labels], dtype=np.float64)
    return np.array(labels), mean, np.where(std > 0, std, 1.0), n, counts


def _gradient(
    Z: np.ndarray, target: np.ndarray, W: np.ndarray, b: np.ndarray, row_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    logits = Z @ W + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(Z)), target] -= 1.0
    if row_weights is not None:
        p *= row_weights[:, None]
    p /= len(Z)
    return Z.T @ p, p.sum(axis=0)


def _adam(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, rate: float, step: int) -> None:
    m *= 0.9
    m += 0.1 * grad
    v *= 0.999
    v += 0.001 * grad * grad
    param -= rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)


def stream_scores(estimator: Any, source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """True labels, predicted labels, per-class scores (float32, ``estimator.classes_`` order) and the mean
    log-loss of ``estimator`` over every chunk of ``source`` (a class never seen in training scores as zero)."""
    from headstart.heads.metrics import class_scores

    classes = estimator.classes_
    truth, predicted, scores, loss = [], [], [], 0.0
    for X, y in _chunks(source):
        proba = class_scores(estimator, X)
        column = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        picked = np.where(classes[column] == y, proba[np.arange(len(y)), column], 0.0)
        loss += float(-np.log(np.clip(picked, 1e-15, None)).sum())
        truth.append(np.asarray(y))
        predicted.append(classes[np.argmax(proba, axis=1)])
        scores.append(proba.astype(np.float32))
    if not truth:
        return np.array([]), np.array([]), np.zeros((0, len(classes)), np.float32), 0.0
    y_true = np.concatenate(truth)
    return y_true, np.concatenate(predicted), np.concatenate(scores), loss / len(y_true)


def stream_predictions(estimator: Any, source: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """True labels, predicted labels and the mean log-loss of ``estimator`` over every chunk of ``source`` (the
    labels of a table that does not fit in memory do: one small string per row)."""
    y_true, y_pred, _, loss = stream_scores(estimator, source)
    return y_true, y_pred, loss


def stream_accuracy(estimator: Any, source: Any) -> tuple[float, float]:
    """Accuracy and mean log-loss of ``estimator`` over every chunk of ``source``."""
    y_true, y_pred, loss = stream_predictions(estimator, source)
    return (float(np.mean(y_true == y_pred)), loss) if len(y_true) else (0.0, 0.0)


def fit_probe_stream(
    train: Any, val: Any, train_val: Any, Cs: Sequence[float], select_by: str = "auto", **params: Any
) -> tuple[StreamingLinearProbe, list[tuple[float, float]]]:
    """Choose C on val by ``select_by`` (as every head's: ``auto`` is balanced accuracy when the largest train
    class has over 1.5x the rows of the smallest, else accuracy; ties go to the lower val log-loss; Cs walked
    upwards with warm starts), refit on ``train_val`` with it. Returns the refitted probe and ``(C, val score)``
    for every C; the metric is the probe's ``select_by_``."""
    scores, losses, previous, metric = [], [], None, None
    for C in sorted(Cs):
        probe = StreamingLinearProbe(C=C, **params).fit_chunks(train, warm_from=previous)
        if metric is None:  # the class counts come with the first fit's pass over train
            counts = probe.class_counts_.astype(int)
            metric = resolve_select_by(select_by, np.repeat(np.arange(len(counts)), counts))
        y_true, y_pred, loss = stream_predictions(probe, val)
        score = -loss if metric == "log_loss" else val_score(metric, y_true, y_pred)
        scores.append((float(C), score))
        losses.append(loss)
        previous = probe
    best = min(range(len(scores)), key=lambda i: (-scores[i][1], losses[i], i))
    log.info("streaming probe: C=%g (val %s %.4f) of %d", scores[best][0], metric, scores[best][1], len(scores))
    final = StreamingLinearProbe(C=scores[best][0], **params).fit_chunks(train_val)
    final.select_by_ = metric
    return final, scores


def fit_knn_stream(source: Any, sample_rows: int = 50_000, seed: int = 0, **params: Any) -> KNNClassifier:
    """The ``knn`` head over every chunk of ``source``: the index is trained on about ``sample_rows`` rows
    (whole chunks, spread over the table), then filled chunk by chunk."""
    rng = np.random.default_rng(seed)
    sizes = [len(source.read(0)[1])] if len(source) else [0]
    wanted = max(1, math.ceil(sample_rows / max(sizes[0], 1)))
    picks = np.sort(rng.choice(len(source), min(wanted, len(source)), replace=False))
    parts = list(_chunks(source, picks))
    knn = KNNClassifier(**params).fit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    knn.index_.reset()  # keep the trained cells and codebooks, drop the sample's vectors
    knn._y = np.zeros(0, dtype=np.int64)
    for X, y in _chunks(source):
        knn.add(X, y)
    return knn


def knn_recall(knn: KNNClassifier, reference: Any, queries: np.ndarray, k: int = 10) -> float:
    """Recall@k of ``knn``'s index against exact search over ``reference`` (the same rows, streamed)."""
    found = knn.kneighbors(queries, k)[1]
    Q = knn._prepare(queries)
    best_s = np.full((len(Q), k), -np.inf)
    best_i = np.full((len(Q), k), -1, dtype=np.int64)
    offset = 0
    for X, _ in _chunks(reference):
        V = knn._prepare(X)
        s = Q @ V.T if knn.metric == "cosine" else -((Q * Q).sum(1)[:, None] - 2 * Q @ V.T + (V * V).sum(1)[None])
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, np.broadcast_to(np.arange(offset, offset + len(V)), s.shape)], axis=1)
        top = np.argpartition(-s_all, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1)
        offset += len(V)
    hits = [len(set(a[a >= 0]) & set(b)) for a, b in zip(found, best_i, strict=True)]
    return float(np.mean(hits)) / k
