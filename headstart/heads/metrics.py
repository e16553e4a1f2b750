"""Classification metrics, per-class scores and confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import softmax
from scipy.stats import t
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

__all__ = ["class_scores", "classification_metrics", "confusion", "mean_ci95", "per_class", "top_k_accuracy"]


def class_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Per-class scores aligned with ``estimator.classes_``: ``predict_proba`` where the head has it, else the
    softmax of ``decision_function`` (uncalibrated, but it ranks the classes the same way)."""
    if hasattr(estimator, "predict_proba"):
        try:
            return np.asarray(estimator.predict_proba(X))
        except AttributeError:
            pass
    decision = np.asarray(estimator.decision_function(X), dtype=np.float64)
    if decision.ndim == 1:
        decision = np.stack([-decision, decision], axis=1)
    return softmax(decision, axis=1)


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray, k: int = 5) -> float:
    """The share of rows whose true class is among the ``k`` best-scored ``classes`` (``k < len(classes)``).

    scikit-learn's ``top_k_accuracy_score``, with one difference: among equal scores the earlier class ranks
    first (as ``predict``'s argmax does), where scikit-learn ranks the later one first. The k-NN head scores
    every class without a neighbour exactly 0, so the rule shows: on the default run its top-5 accuracy is
    0.9926 (metrics/heads/digits/mobilenet_v2/knn.json) and would be 0.9963 with scikit-learn's. Reversing the
    columns turns one rule into the other. A true class the head never saw is a miss.

    >>> top_k_accuracy(np.array(["b", "d"]), np.array([[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]]),
    ...                np.array(["a", "b", "c", "d"]), k=3)
    0.5
    """
    classes, y_true = np.asarray(classes), np.asarray(y_true)
    n = len(classes)
    if not 0 < k < n:
        raise ValueError(f"top-k accuracy needs 0 < k < {n} (the number of classes), got k={k}")
    position = {label: i for i, label in enumerate(classes.tolist())}
    codes = np.array([position.get(label, -1) for label in y_true.tolist()], dtype=np.int64)
    known = codes >= 0
    if not known.any():
        return 0.0
    hits = top_k_accuracy_score(
        n - 1 - codes[known], np.asarray(scores)[known, ::-1], k=k, labels=np.arange(n), normalize=False
    )
    return float(hits) / len(y_true)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None, classes: np.ndarray | None = None
) -> dict[str, float]:
    """Top-1 accuracy, balanced accuracy, macro-F1; with more than 5 classes, top-5 accuracy; with two classes,
    ROC-AUC and average precision of ``classes[1]`` (the positive class) from ``scores``."""
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    if scores is not None and classes is not None and len(classes) > 5:
        out["top5_accuracy"] = top_k_accuracy(y_true, scores, classes, 5)
    if scores is not None and classes is not None and len(classes) == 2:
        positive = np.asarray(y_true) == classes[1]
        if 0 < positive.sum() < len(positive):
            out["roc_auc"] = float(roc_auc_score(positive, np.asarray(scores)[:, 1]))
            out["average_precision"] = float(average_precision_score(positive, np.asarray(scores)[:, 1]))
    return out


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0
    )
    return {
        str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> list[list[int]]:
    return confusion_matrix(y_true, y_pred, labels=list(classes)).tolist()


def mean_ci95(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, standard deviation and Student-t 95% confidence interval of the mean."""
    array = np.asarray(values, dtype=np.float64)
    n = len(array)
    mean = float(array.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": 0.0, "ci95_low": mean, "ci95_high": mean, "n": n}
    std = float(array.std(ddof=1))
    # not scipy.stats.t.interval: it gives NaN when every seed scores the same (std 0), which seeded heads do
    half = float(t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}
