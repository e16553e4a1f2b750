"""Outliers: rows far from all others in the embedding space.

A row's score is 1 minus the mean cosine similarity of its :data:`K` nearest other rows. A row is flagged when
its score is beyond Tukey's far-out fence of all scores (``Q3 + 3 * IQR``): no fixed cosine, so the rule
holds for any backbone's scale, and a collection without odd rows flags few or none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FENCE", "K", "OUTLIER_COLUMNS", "flag_outliers", "outlier_scores"]

K = 10
FENCE = 3.0
OUTLIER_COLUMNS = ["id", "path", "split", "label", "score"]


def outlier_scores(similarities: np.ndarray) -> np.ndarray:
    """1 - mean cosine similarity over each row's nearest neighbours (``nan`` entries, from small tables, skipped)."""
    if similarities.size == 0:
        return np.zeros(len(similarities))
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(np.isnan(similarities), np.nan, similarities), axis=1)
    return np.round(1.0 - np.nan_to_num(mean, nan=0.0).astype(np.float64), 6)


def flag_outliers(frame: pd.DataFrame, scores: np.ndarray, fence: float = FENCE) -> pd.DataFrame:
    """One row per outlier (``OUTLIER_COLUMNS``), the farthest first."""
    if len(scores) < 4:
        rows = np.array([], dtype=np.int64)
    else:
        q1, q3 = np.percentile(scores, [25, 75])
        rows = np.flatnonzero(scores > q3 + fence * (q3 - q1))
    out = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(dtype=object)[rows],
            "path": frame["path"].to_numpy(dtype=object)[rows],
            "split": frame["split"].to_numpy(dtype=object)[rows],
            "label": frame["label"].to_numpy(dtype=object)[rows],
            "score": scores[rows].astype(np.float64),
        }
    )
    return out.sort_values(["score", "id"], ascending=[False, True], ignore_index=True)
