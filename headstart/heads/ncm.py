"""Nearest class mean on L2-normalised features, the standard few-shot baseline, and the ``ncm`` head.

>>> import numpy as np
>>> X = np.array([[1, 0], [0.8, 0.2], [0, 1], [0.2, 0.8]])
>>> NearestClassMean().fit(X, [0, 0, 1, 1]).predict([[0.9, 0.3]]).tolist()
[0]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from headstart.heads._checks import check_classes
from headstart.heads.params import HeadType, positive

__all__ = ["NCM", "NearestClassMean"]


def _normalise(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


class NearestClassMean(ClassifierMixin, BaseEstimator):
    """Assign each vector to the class whose mean (of normalised vectors, renormalised) is most similar.

    Parameters
    ----------
    temperature : float, default=0.1
        ``predict_proba`` is the softmax of cosine similarities divided by ``temperature``.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray) -> NearestClassMean:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        check_classes(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        Xn = _normalise(X.astype(np.float64))
        means = np.stack([Xn[encoded == c].mean(axis=0) for c in range(len(self.classes_))])
        self.means_ = _normalise(means)
        return self

    def _similarities(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "means_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _normalise(X.astype(np.float64)) @ self.means_.T

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Cosine similarity to each class mean; for two classes, that of ``classes_[1]`` minus ``classes_[0]``."""
        sims = self._similarities(X)
        return sims[:, 1] - sims[:, 0] if len(self.classes_) == 2 else sims

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self._similarities(X) / self.temperature, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        sims = self._similarities(X)
        return self.classes_[np.argmax(sims, axis=1)]


def _build(p: Mapping[str, Any], seed: int) -> NearestClassMean:
    return NearestClassMean(temperature=float(p["temperature"]))


def _adapt(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
    return estimator.fit(X, y)  # prototypes move to the target's class means


NCM = HeadType(
    "ncm",
    "nearest class mean on L2-normalised features (the few-shot baseline; blind to class counts already)",
    {"temperature": positive(0.1)},
    _build,
    adapt=_adapt,
    quick=True,
)
