"""Choosing a head's hyper-parameters on the val split.

Every grid point is fitted on train and scored on val by the head's ``select_by`` metric (``auto``: balanced
accuracy on imbalanced train splits, else accuracy; :mod:`headstart.heads.scoring`); the first best point wins
(grids are ordered from the most to the least regularised, so ties go to the simpler model), except for logistic
regression, where the val log-loss breaks ties. A head's ``sweep`` hook may take a faster way through its grid
(:mod:`headstart.heads.linear`, :mod:`headstart.heads.knn_head`): logistic regression walks its C grid upwards
with warm starts (each fit starts from the previous solution), and k-NN searches once with the largest k and votes
for every k from the same neighbours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headstart.heads import parallel
from headstart.heads.registry import HeadError, build_head, get_head, grid_points
from headstart.heads.scoring import resolve_select_by, val_score

__all__ = ["Selection", "check_val_split", "select"]

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
        jobs = parallel.workers(len(calls), X_train, kind.quick)
        accuracies = list(parallel.run(parallel.fit_val_score, calls, jobs))
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
