"""What the head confuses: class pairs ranked by out-of-sample mistakes, and the misclassified test images
beside the train images nearest to them (often the reason: a look-alike, or a mislabelled neighbour)."""

from __future__ import annotations

from typing import Any

import numpy as np

from headstart.heads.audit.labels import LabelScores
from headstart.heads.neighbours import nearest

__all__ = ["confused_pairs", "misclassified_with_neighbours"]


def confused_pairs(scores: LabelScores, top: int = 10, examples: int = 6) -> list[dict[str, Any]]:
    """The ``top`` class pairs the head mixes up most (both directions counted), each with the rows of its
    most confident mistakes: ``{a, b, count, a_as_b, b_as_a, rows}``."""
    predicted = np.argmax(scores.probabilities, axis=1)
    wrong = np.flatnonzero(predicted != scores.y)
    counts: dict[tuple[int, int], list[int]] = {}
    for row in wrong:
        pair = (min(scores.y[row], predicted[row]), max(scores.y[row], predicted[row]))
        counts.setdefault((int(pair[0]), int(pair[1])), []).append(int(row))
    ranked = sorted(counts.items(), key=lambda item: (-len(item[1]), item[0]))[:top]
    out = []
    for (a, b), rows in ranked:
        confidence = scores.probabilities[rows, predicted[rows]]
        chosen = [rows[i] for i in np.argsort(-confidence, kind="stable")[:examples]]
        a_as_b = int(sum(scores.y[r] == a for r in rows))
        out.append(
            {
                "a": str(scores.classes[a]), "b": str(scores.classes[b]), "count": len(rows),
                "a_as_b": a_as_b, "b_as_a": len(rows) - a_as_b, "rows": chosen,
            }
        )  # fmt: skip
    return out


def misclassified_with_neighbours(
    X: np.ndarray, split: np.ndarray, scores: LabelScores, k: int = 3, limit: int = 200
) -> list[dict[str, Any]]:
    """Test rows the head gets wrong (at most ``limit``, the most confident first), each with its ``k`` nearest
    train or val rows: ``{row, predicted, confidence, neighbours: [[row, similarity], ...]}``."""
    test = np.flatnonzero(split == "test")
    seen = np.flatnonzero(np.isin(split, ("train", "val")))
    predicted = np.argmax(scores.probabilities, axis=1)
    wrong = test[predicted[test] != scores.y[test]]
    if not len(wrong) or not len(seen):
        return []
    confidence = scores.probabilities[wrong, predicted[wrong]]
    wrong = wrong[np.argsort(-confidence, kind="stable")][:limit]
    idx, sims = nearest(X[seen], X[wrong], min(k, len(seen)))
    return [
        {
            "row": int(row),
            "predicted": str(scores.classes[predicted[row]]),
            "confidence": round(float(scores.probabilities[row, predicted[row]]), 4),
            "neighbours": [[int(seen[j]), round(float(s), 4)] for j, s in zip(idx[i], sims[i]) if j >= 0],
        }
        for i, row in enumerate(wrong)
    ]
