"""The robustness table: every fitted head's test score on shifted copies of the test split, next to its clean
score (read from ``results/robustness/<dataset>.json``; nothing here computes a score)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["robustness_markdown"]

_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal. acc", "macro_f1": "macro-F1"}


def robustness_markdown(result: Mapping[str, Any]) -> str:
    """One row per backbone x layer x head: its metric, the clean score, the score under each shift, and the
    largest drop (bold: the worst shift of the row)."""
    shifts = list(result["shifts"])
    head = ["backbone", "layer", "head", "metric", "clean", *shifts, "largest drop"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + ":---|" + "---:|" * (len(shifts) + 2)]
    for row in result["rows"]:
        metric, scores = row["metric"], row["scores"]
        clean = scores["clean"][metric]
        values = [scores[s][metric] for s in shifts]
        worst = min(range(len(values)), key=values.__getitem__) if values else None
        cells = [f"**{v:.3f}**" if i == worst and v < clean else f"{v:.3f}" for i, v in enumerate(values)]
        drop = "" if worst is None else "none" if values[worst] >= clean else f"-{clean - values[worst]:.3f}"
        lines.append(
            "| " + " | ".join([row["backbone"], row["layer"], row["head"], _SHORT.get(metric, metric),
                               f"{clean:.3f}", *cells, drop]) + " |"  # fmt: skip
        )
    return "\n".join(lines)
