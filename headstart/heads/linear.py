"""The ``logreg`` and ``svm`` heads: scikit-learn's linear models on standardised features.

Their hooks: logistic regression walks its C grid upwards with warm starts (:func:`sweep_logreg_C`; the val
log-loss breaks ties) and is the linear probe fine-tuning starts from (:mod:`headstart.heads.probe`); both move to
a new domain by a few epochs of SGD from their source weights.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from headstart.heads.params import CLASS_WEIGHT, HeadType, choice, class_weight, integer, positive
from headstart.heads.probe import finetuning_probe
from headstart.heads.scoring import resolve_select_by, val_score

__all__ = ["LOGREG", "SVM", "sweep_logreg_C"]

log = logging.getLogger(__name__)


def _logreg(p: Mapping[str, Any], seed: int) -> Pipeline:
    weights = class_weight(p)
    clf = LogisticRegression(C=float(p["C"]), max_iter=int(p["max_iter"]), tol=float(p["tol"]), class_weight=weights)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def _svm(p: Mapping[str, Any], seed: int) -> Pipeline:
    C, weights = float(p["C"]), class_weight(p)
    if p["kernel"] == "linear":
        clf: Any = LinearSVC(C=C, max_iter=int(p["max_iter"]), random_state=seed, class_weight=weights)
    else:
        gamma = p["gamma"] if isinstance(p["gamma"], str) else float(p["gamma"])
        clf = SVC(kernel="rbf", C=C, gamma=gamma, max_iter=-1, random_state=seed, class_weight=weights)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def sweep_logreg_C(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    Cs: list[float],
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    warm_start: bool = True,
    with_loss: bool = False,
    class_weight: str | None = None,
    metric: str = "accuracy",
) -> Any:
    """Val score (``metric``, accuracy by default) of L-BFGS logistic regression on standardised features for
    each C (ascending).

    With ``warm_start`` each fit starts from the previous C's solution, which is what makes a 45-point sweep
    cheap; without it, every fit starts from zero (kept for the benchmark). ``with_loss`` also returns the val
    log-loss of each C: ``(accuracies, losses)``.
    """
    if list(Cs) != sorted(Cs):
        raise ValueError("sweep_logreg_C walks the C grid upwards: give the Cs in ascending order")
    scaler = StandardScaler().fit(X_train)
    Xt, Xv = scaler.transform(X_train), scaler.transform(X_val)
    clf = LogisticRegression(max_iter=max_iter, tol=tol, warm_start=warm_start, class_weight=class_weight)
    accuracies, losses = [], []
    unconverged = 0
    for C in Cs:
        clf.set_params(C=C)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(Xt, y_train)
        unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        proba = clf.predict_proba(Xv)
        accuracies.append(val_score(metric, y_val, clf.classes_[np.argmax(proba, axis=1)], proba, clf.classes_))
        if with_loss:
            losses.append(float(log_loss(y_val, proba, labels=clf.classes_)))
    if unconverged:
        log.info(
            "logreg sweep: %d of %d fits stopped at max_iter=%d before converging (large C)",
            unconverged,
            len(Cs),
            max_iter,
        )
    return (accuracies, losses) if with_loss else accuracies


def _sweep_logreg(
    fixed: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str = "accuracy",
) -> Any:
    """C walked upwards with warm starts; the val log-loss breaks ties between equal scores."""
    if set(grid) != {"C"}:
        return None
    Cs = sorted(grid["C"])
    accuracies, losses = sweep_logreg_C(
        X_train,
        y_train,
        X_val,
        y_val,
        Cs,
        max_iter=int(fixed["max_iter"]),
        tol=float(fixed["tol"]),
        with_loss=True,
        class_weight=class_weight(fixed),
        metric=metric,
    )
    return [{"C": c} for c in Cs], accuracies, losses


def _adapt_linear(loss: str) -> Any:
    def adapt(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
        """``steps`` epochs of SGD on the target, starting from the source weights (source standardisation kept)."""
        clf, scaler = estimator.named_steps["clf"], estimator.named_steps["scale"]
        if not hasattr(clf, "coef_"):  # an RBF SVM has no weights to continue from
            return None
        sgd = SGDClassifier(
            loss=loss,
            alpha=1.0 / (float(best["C"]) * len(X)),
            max_iter=steps,
            tol=None,
            random_state=seed,
            class_weight=class_weight(best),
        )
        sgd.fit(scaler.transform(X), y, coef_init=clf.coef_, intercept_init=clf.intercept_)
        return Pipeline([("scale", scaler), ("clf", sgd)])

    return adapt


def _probe_logreg(
    fixed: Mapping[str, Any], grid: Mapping[str, list[Any]], X_train: Any, y_train: Any, X_val: Any, y_val: Any
) -> Any:
    return finetuning_probe(
        X_train,
        y_train,
        X_val,
        y_val,
        list(grid.get("C") or [float(fixed["C"])]),
        class_weight=class_weight(fixed),
        metric=resolve_select_by(str(fixed.get("select_by", "auto")), y_train),
    )


LOGREG = HeadType(
    "logreg",
    "L-BFGS multinomial logistic regression on standardised features, C swept on val",
    {
        "C": positive({"logspace": [-6, 5, 45]}),
        "max_iter": integer(1000),
        "tol": positive(1e-4),
        "class_weight": CLASS_WEIGHT,
    },
    _logreg,
    sweep=_sweep_logreg,
    adapt=_adapt_linear("log_loss"),
    probe=_probe_logreg,
)
SVM = HeadType(
    "svm",
    "SVM on standardised features (linear by default, or rbf), C (and gamma) chosen on val",
    {
        "kernel": choice("linear", "linear", "rbf"),
        "C": positive({"logspace": [-4, 2, 7]}),
        "gamma": positive("scale", "scale", "auto"),
        "max_iter": integer(5000),
        "class_weight": CLASS_WEIGHT,
    },
    _svm,
    # not seeded: liblinear's seed only orders its coordinate descent on a problem with one solution (and
    # libsvm's rbf fit uses none), so 5 seeds gave identical predictions on digits; one fit is enough
    randomized=False,
    adapt=_adapt_linear("hinge"),
)
