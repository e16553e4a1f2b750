"""The domain-shift table as Markdown, with the forgetting of the adapted regime spelled out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["transfer_markdown"]


def transfer_markdown(rows: Sequence[Mapping[str, Any]], source: str, target: str, adapt_steps: int) -> str:
    """The table as Markdown, with the forgetting of the adapted regime spelled out."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    lines = [f"| head | trained on | {source} test | {target} test |", "|---|---|---:|---:|"]
    for row in rows:
        regime = row["regime"]
        if regime == "source -> target":
            regime = f"{source}, then {adapt_steps} epoch(s) on {target}"
        else:
            regime = regime.replace("source", source).replace("target", target)
        lines.append(f"| {row['head']} | {regime} | {pct(row['source_test'])} | {pct(row['target_test'])} |")
    notes = []
    for head in dict.fromkeys(r["head"] for r in rows):
        mine = {r["regime"]: r for r in rows if r["head"] == head}
        before, after = mine["source only"]["source_test"], mine["source -> target"]["source_test"]
        if before is not None and after is not None:
            gain = (mine["source -> target"]["target_test"] or 0) - (mine["source only"]["target_test"] or 0)
            notes.append(
                f"{head} forgets {100 * (before - after):.1f} points of {source} when adapted "
                f"({pct(before)} -> {pct(after)}) and gains {100 * gain:.1f} on {target}"
            )
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) + "." if notes else "")
