"""The ``logreg_stream`` head: a linear probe trained over a table's row groups, for tables beyond memory.

:class:`StreamingLinearProbe` is multinomial logistic regression, the objective of the ``logreg`` head
(``C * sum(log-loss) + ||W||^2 / 2`` on standardised features), minimised by mini-batch Adam with one chunk
(:mod:`headstart.heads.chunks`: a table's row group of 4,096 rows, or arrays in memory) in memory at a time;
:func:`fit_probe_stream` chooses C on val the way the ``logreg`` head does, then refits on train+val.

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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from headstart.heads._checks import check_classes
from headstart.heads.chunks import ArrayChunks, chunks, stream_predictions
from headstart.heads.params import CLASS_WEIGHT, HeadType, class_weight, integer, positive
from headstart.heads.scoring import resolve_select_by, val_score

__all__ = ["LOGREG_STREAM", "StreamingLinearProbe", "fit_probe_stream"]

log = logging.getLogger(__name__)

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
            for X, y in chunks(source, rng.permutation(len(source))):
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
    for X, y in chunks(source):
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


def _build(p: Mapping[str, Any], seed: int) -> StreamingLinearProbe:
    return StreamingLinearProbe(
        C=float(p["C"]),
        epochs=int(p["epochs"]),
        batch_size=int(p["batch_size"]),
        lr=float(p["lr"]),
        min_steps=int(p["min_steps"]),
        seed=seed,
        class_weight=class_weight(p),
    )


def _stream_fit(params: Mapping[str, Any], source: Any, seed: int, warm: Any = None) -> StreamingLinearProbe:
    """Adam over the chunks; a previous C's probe is the starting point (the warm start of the logreg sweep)."""
    return _build(params, seed).fit_chunks(source, warm_from=warm)


def _adapt(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> StreamingLinearProbe:
    """``steps`` epochs of the same Adam on the target, from the source weights (source standardisation kept)."""
    moved = _build({**best, "epochs": steps, "min_steps": 0}, seed)
    return moved.fit_chunks(ArrayChunks(X, y), warm_from=estimator)


LOGREG_STREAM = HeadType(
    "logreg_stream",
    "the logreg objective by mini-batch Adam over the table's row groups, for tables beyond memory",
    {
        "C": positive({"logspace": [-3, 1, 3]}),  # each C is a pass (or more) over the whole train split
        "epochs": integer(2),
        "batch_size": integer(256),
        "lr": positive(0.01),
        "min_steps": integer(3000, low=0),  # small tables get more passes, so the fit still converges
        "class_weight": CLASS_WEIGHT,
    },
    _build,
    randomized=True,  # the seed orders the chunks and the mini-batches
    adapt=_adapt,
    stream_fit=_stream_fit,
)
