"""Choosing a head's hyper-parameters on the val split.

Every grid point is fitted on train and scored on val by the head's ``select_by`` metric (``auto``: balanced
accuracy on imbalanced train splits, else accuracy; :mod:`headstart.heads.scoring`); the first best point wins
(grids are ordered from the most to the least regularised, so ties go to the simpler model), except for logistic
regression, where the val log-loss breaks ties. A head's ``sweep`` hook may take a faster way through its grid
(:mod:`headstart.heads.builtin`): logistic regression walks its C grid upwards with warm starts (each fit
starts from the previous solution), and k-NN searches once with the largest k and votes for every k from the
same neighbours.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from headstart.heads import parallel
from headstart.heads.registry import HeadError, build_head, get_head, grid_points
from headstart.heads.scoring import resolve_select_by, val_score

__all__ = ["Selection", "check_val_split", "select", "sweep_logreg_C"]

log = logging.getLogger(__name__)


@dataclass
class Selection:
    """The chosen parameters, the metric they were chosen by and the val score of every grid point.

    ``best`` holds ``select_by`` as resolved (``auto`` becomes the metric it meant); a ``log_loss`` score is
    negated, so higher is better for every metric.
    """

    best: dict[str, Any]
    scores: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    seconds: float = 0.0
    metric: str = "accuracy"

    @property
    def best_score(self) -> float | None:
        return max(s for _, s in self.scores) if self.scores else None


def check_val_split(head: str, grid: Mapping[str, list[Any]], val_rows: int) -> bool:
    """Whether there is a val split to score on; a grid without one is an error that names the fix."""
    if val_rows == 0 and grid:
        raise HeadError(
            f"head '{head}' has a grid over {', '.join(grid)} but the dataset has no val split; "
            "give the dataset a val fraction or fix the parameter to one value"
        )
    return val_rows > 0


def select(
    head: str,
    fixed: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
) -> Selection:
    """Pick the grid point with the best val score (``fixed`` holds the other parameters and ``select_by``)."""
    metric = resolve_select_by(str(fixed.get("select_by", "auto")), y_train)
    fixed = {**fixed, "select_by": metric} if "select_by" in fixed else dict(fixed)
    if not check_val_split(head, grid, len(X_val)):
        return Selection(best=dict(fixed), metric=metric)
    start = time.perf_counter()
    kind = get_head(head)
    swept = kind.sweep(fixed, grid, X_train, y_train, X_val, y_val, metric) if kind.sweep else None
    tiebreak: list[float] | None = None
    if swept is not None:
        points, accuracies, tiebreak = swept
    else:
        points = grid_points(grid) if grid else [{}]  # no grid: the one point's val score, for the report
        for point in points:
            build_head(head, {**fixed, **point}, seed)  # a bad value is a HeadError here, before any fit
        calls = [
            (kind.build, {**kind.defaults, **fixed, **point}, seed, X_train, y_train, X_val, y_val, metric)
            for point in points
        ]
        accuracies = list(parallel.run(parallel.fit_val_score, calls, parallel.workers(len(calls), X_train, kind.quick)))
    if tiebreak is not None:
        # equal val accuracies are common on a small val split; the lower val log-loss breaks the tie, which
        # keeps the choice stable under tiny changes of the embeddings (fp32 vs bf16, BatchNorm folding)
        best = min(range(len(points)), key=lambda i: (-accuracies[i], tiebreak[i], i))
    else:
        best = int(np.argmax(accuracies))  # first best: the most regularised among equals
    scores = [(p, float(a)) for p, a in zip(points, accuracies, strict=True)]
    log.info("%s: best %s (val %s %.4f) of %d grid points", head, points[best], metric, accuracies[best], len(points))
    return Selection(
        best={**fixed, **points[best]}, scores=scores, seconds=time.perf_counter() - start, metric=metric
    )


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
    """Val score (``metric``, accuracy by default) of L-BFGS logistic regression on standardised features for each C (ascending).

    With ``warm_start`` each fit starts from the previous C's solution, which is what makes a 45-point sweep
    cheap; without it, every fit starts from zero (kept for the benchmark). ``with_loss`` also returns the val
    log-loss of each C: ``(accuracies, losses)``.
    """
    from sklearn.metrics import log_loss

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
