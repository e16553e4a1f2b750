"""Linear heads as linear layers: what a network is fine-tuned from, and a fitted head exported as one layer."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from headstart.heads.scoring import val_score

__all__ = ["as_linear_layer", "finetuning_probe"]


def _one_row_per_class(coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary classifier's single row ``w`` becomes ``[0, w]``: a softmax over them is the sigmoid of ``w``."""
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    if coef.shape[0] == 1:
        return np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    return coef, intercept


def as_linear_layer(estimator: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(weight, bias, classes)`` with ``logits = x @ weight.T + bias`` on unscaled features.

    Takes the ``StandardScaler -> LogisticRegression`` (or linear SVM) pipeline of the logreg/svm heads and folds
    the standardisation into the weights. A binary classifier becomes two rows, ``[0, w]``, so that a softmax
    over them gives the same probabilities as the sigmoid.
    """
    steps = getattr(estimator, "named_steps", None)
    if not steps or "clf" not in steps or not hasattr(steps["clf"], "coef_"):
        raise ValueError(f"{type(estimator).__name__} is not a fitted linear head (logreg or linear svm)")
    scaler, clf = steps.get("scale"), steps["clf"]
    coef, intercept = _one_row_per_class(clf.coef_, clf.intercept_)
    if scaler is not None:
        weight = coef / np.asarray(scaler.scale_, dtype=np.float64)
        bias = intercept - weight @ np.asarray(scaler.mean_, dtype=np.float64)
    else:
        weight, bias = coef, intercept
    return weight.astype(np.float32), bias.astype(np.float32), [str(c) for c in clf.classes_]


def finetuning_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    Cs: list[float],
    *,
    scale_floor: float = 0.1,
    max_iter: int = 1000,
    class_weight: str | None = None,
    metric: str = "accuracy",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], float, float]:
    """The linear probe a network is fine-tuned from: ``(mean, scale, weight, bias, classes, C, val_score)``.

    Like the logreg head (centred, scaled features; ``class_weight``; C chosen on val by ``metric`` with a
    warm-started sweep; fitted on train only, so val stays unseen for early stopping), except that no feature's
    scale may fall below ``scale_floor`` x the median scale. Plain standardisation divides nearly constant
    features by nearly zero; a probe may then lean on them, and the first training steps, which move those
    features a little, blow the logits up.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    scale = np.maximum(std, scale_floor * float(np.median(std[std > 0])) if (std > 0).any() else 1.0)
    Xt, Xv = (X_train - mean) / scale, (X_val - mean) / scale
    clf = LogisticRegression(max_iter=max_iter, warm_start=True, class_weight=class_weight)
    best = (-np.inf, Cs[0], None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in sorted(Cs):
            clf.set_params(C=C).fit(Xt, y_train)
            proba = clf.predict_proba(Xv)
            accuracy = val_score(metric, y_val, clf.classes_[np.argmax(proba, axis=1)], proba, clf.classes_)
            if accuracy > best[0]:
                best = (accuracy, C, (clf.coef_.copy(), clf.intercept_.copy()))
    accuracy, C, (coef, intercept) = best
    coef, intercept = _one_row_per_class(coef, intercept)
    return (
        mean.astype(np.float32),
        scale.astype(np.float32),
        coef.astype(np.float32),
        intercept.astype(np.float32),
        [str(c) for c in clf.classes_],
        float(C),
        accuracy,
    )
