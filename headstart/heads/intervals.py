"""95% intervals of test scores that cover the sampling of the test set itself.

Accuracy gets the Wilson score interval (a binomial proportion); the other metrics a percentile bootstrap over
test images: a fixed number of resamples from a fixed seed, so the same predictions give the same bytes.

>>> low, high = wilson(525, 539)
>>> round(low, 3), round(high, 3)
(0.957, 0.984)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["BOOTSTRAP_SEED", "RESAMPLES", "bootstrap", "test_intervals", "wilson"]

RESAMPLES = 1000
BOOTSTRAP_SEED = 0
_Z = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson(successes: int, n: int, z: float = _Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(
    score: Callable[[np.ndarray], float], n: int, *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """2.5% and 97.5% percentiles of ``score(indices)`` over resamples of ``n`` test images with replacement.

    A resample where the score is undefined (e.g. ROC-AUC with one class drawn) is skipped.
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        try:
            with warnings.catch_warnings():  # a resample may miss a rare class: scikit-learn warns, we know
                warnings.simplefilter("ignore", UserWarning)
                value = score(rng.integers(0, n, size=n))
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    if not values:
        return (math.nan, math.nan)
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


def _balanced_accuracy(confusion: np.ndarray) -> float:
    """Mean recall over the classes that occur in the true labels (scikit-learn's ``balanced_accuracy_score``)."""
    support = confusion.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(confusion)[present] / support[present]))


def _macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the true or the predicted labels (``f1_score(average="macro",
    zero_division=0)``)."""
    true, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (true + predicted) > 0
    return float(np.mean(2 * np.diag(confusion)[present] / (true + predicted)[present]))


def test_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, classes: Any, metrics: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """``{metric: {value, low, high, method}}`` for every metric in ``metrics`` this module knows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    positive = None if scores is None or len(classes) != 2 else np.asarray(scores)[:, 1]
    is_positive = y_true == (classes[1] if len(classes) == 2 else None)
    # balanced accuracy and macro-F1 from one confusion matrix per resample (np.bincount on class codes): the same
    # numbers as scikit-learn's functions, which would spend ~10 ms per call on input checks, 1000 times per metric
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k = len(labels)
    pairs = codes[:n] * k + codes[n:]
    scorers: dict[str, Callable[[np.ndarray], float]] = {
        "balanced_accuracy": lambda i: _balanced_accuracy(np.bincount(pairs[i], minlength=k * k).reshape(k, k)),
        "macro_f1": lambda i: _macro_f1(np.bincount(pairs[i], minlength=k * k).reshape(k, k)),
    }
    if positive is not None:
        scorers["roc_auc"] = lambda i: roc_auc_score(is_positive[i], positive[i])
        scorers["average_precision"] = lambda i: average_precision_score(is_positive[i], positive[i])
    out = {}
    if "accuracy" in metrics:
        low, high = wilson(int(np.sum(y_true == y_pred)), n)
        out["accuracy"] = {"value": float(metrics["accuracy"]), "low": low, "high": high, "method": "wilson"}
    for key, scorer in scorers.items():
        if key in metrics:
            low, high = bootstrap(scorer, n)
            out[key] = {"value": float(metrics[key]), "low": low, "high": high, "method": "bootstrap"}
    return out
