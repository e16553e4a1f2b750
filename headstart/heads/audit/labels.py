"""Likely label errors: cleanlab's confident learning over out-of-sample predicted probabilities.

No row is scored by a head that saw it: the train and val rows get their probabilities from a
:data:`FOLDS`-fold stratified cross-validation over train+val with the chosen head and parameters, and the test
rows from that head fitted on all of train+val. Confident learning (``cleanlab.filter.find_label_issues``,
``filter_by="both"``) then estimates, per pair of classes, how many labels are wrong, and flags the rows that
are both among that many least self-confident and confidently counted as another class (the stricter of its
rules: on the planted digits it flagged fewer rows that were not flips than ``prune_by_noise_rate`` at a
slightly lower recall). benchmarks/audit.py measures recall and precision on digits with planted flips.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from headstart.heads.metrics import class_scores
from headstart.heads.registry import build_head

__all__ = ["FOLDS", "LABEL_COLUMNS", "LabelScores", "label_issues", "no_label_issues", "out_of_sample_scores"]

log = logging.getLogger(__name__)

FOLDS = 5
LABEL_COLUMNS = ["id", "path", "split", "label", "suggested", "score"]


@dataclass
class LabelScores:
    """Out-of-sample class probabilities of every row (``classes`` order) and the index of each row's label."""

    classes: np.ndarray
    probabilities: np.ndarray
    y: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.classes[np.argmax(self.probabilities, axis=1)]


def _scores(head: str, params: Mapping[str, Any], seed: int, X_fit, y_fit, X_score, n_classes: int) -> np.ndarray:
    estimator = build_head(head, params, seed).fit(X_fit, y_fit)
    out = np.zeros((len(X_score), n_classes), dtype=np.float64)
    out[:, np.asarray(estimator.classes_, dtype=np.int64)] = class_scores(estimator, X_score)
    return out


def out_of_sample_scores(
    head: str,
    params: Mapping[str, Any],
    X: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    *,
    folds: int = FOLDS,
    seed: int = 0,
) -> LabelScores:
    """Class probabilities of every row from a ``head`` that never saw it (see the module's docstring)."""
    classes, y = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    probabilities = np.zeros((len(X), len(classes)), dtype=np.float64)
    seen = np.flatnonzero(np.isin(split, ("train", "val")))
    test = np.flatnonzero(~np.isin(split, ("train", "val")))
    counts = np.bincount(y[seen], minlength=len(classes))
    smallest = int(counts[counts > 0].min()) if len(seen) else 0
    n_splits = max(2, min(folds, smallest))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fit_part, score_part in splitter.split(X[seen], y[seen]):
        fit_rows, score_rows = seen[fit_part], seen[score_part]
        probabilities[score_rows] = _scores(head, params, seed, X[fit_rows], y[fit_rows], X[score_rows], len(classes))
    if len(test):
        probabilities[test] = _scores(head, params, seed, X[seen], y[seen], X[test], len(classes))
    totals = probabilities.sum(axis=1, keepdims=True)
    uniform = np.full_like(probabilities, 1 / len(classes))
    probabilities = np.divide(probabilities, totals, out=uniform, where=totals > 0)
    log.info("out-of-sample probabilities of %d rows from %d-fold %s", len(X), n_splits, head)
    return LabelScores(classes, probabilities, y)


def label_issues(frame: pd.DataFrame, scores: LabelScores) -> pd.DataFrame:
    """One row per likely label error (``LABEL_COLUMNS``), the likeliest first; ``score`` is 1 minus the
    probability the head gives the row's own label (cleanlab's self-confidence)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if len(scores.classes) < 2:
        return no_label_issues()
    flagged = find_label_issues(scores.y, scores.probabilities, filter_by="both", n_jobs=1)
    quality = get_label_quality_scores(scores.y, scores.probabilities, method="self_confidence")
    rows = np.flatnonzero(flagged)
    if not len(rows):
        return no_label_issues()
    out = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(dtype=object)[rows],
            "path": frame["path"].to_numpy(dtype=object)[rows],
            "split": frame["split"].to_numpy(dtype=object)[rows],
            "label": scores.classes[scores.y[rows]].astype(object),
            "suggested": scores.predicted[rows].astype(object),
            "score": np.round(1.0 - quality[rows], 6),
        }
    )
    return out.sort_values(["score", "id"], ascending=[False, True], ignore_index=True)


def no_label_issues() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "score" else "object") for c in LABEL_COLUMNS})
