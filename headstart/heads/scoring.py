"""What a grid choice on val is scored by: ``select_by`` and the class weights of imbalanced data.

``select_by`` is ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``log_loss`` or ``auto``: balanced
accuracy when the largest class of the train split has more than 1.5x the images of the smallest, else
accuracy. Plain accuracy on imbalanced data rewards a head that learns the majority class.

>>> import numpy as np
>>> resolve_select_by("auto", np.array([0] * 90 + [1] * 10))
'balanced_accuracy'
>>> resolve_select_by("auto", np.array([0] * 12 + [1] * 10))
'accuracy'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

from headstart.data.imbalance import IMBALANCE_RATIO

__all__ = ["IMBALANCE_RATIO", "SELECT_BY", "balanced_weights", "imbalance_ratio", "resolve_select_by", "val_score"]

SELECT_BY = ("auto", "accuracy", "balanced_accuracy", "macro_f1", "log_loss")


def imbalance_ratio(y: Sequence[Any]) -> float:
    """Images of the largest class over those of the smallest (1.0 for one class or none)."""
    _, counts = np.unique(np.asarray(y), return_counts=True)
    return float(counts.max() / counts.min()) if len(counts) else 1.0


def resolve_select_by(select_by: str, y_train: Sequence[Any]) -> str:
    """The metric a ``select_by`` setting means for this train split (``auto`` looks at its class counts)."""
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by must be one of {', '.join(SELECT_BY)}, got {select_by!r}")
    if select_by != "auto":
        return select_by
    return "balanced_accuracy" if imbalance_ratio(y_train) > IMBALANCE_RATIO else "accuracy"


def balanced_weights(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per-class weights ``n / (n_classes * count)``, as scikit-learn's ``class_weight='balanced'``."""
    counts = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
    return len(y) / (len(classes) * np.maximum(counts, 1.0))


def val_score(
    metric: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None, classes: Any = None
) -> float:
    """The val score of one grid point, higher is better (``log_loss`` is negated)."""
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(y_true, y_pred))
    if metric == "macro_f1":
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if metric == "log_loss":
        if proba is None:
            raise ValueError("log_loss needs class probabilities")
        return -float(log_loss(y_true, np.clip(proba, 1e-15, 1.0), labels=classes))
    raise ValueError(f"unknown selection metric {metric!r}; one of {', '.join(SELECT_BY[1:])}")
