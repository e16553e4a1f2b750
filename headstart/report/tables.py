"""The head comparison as Markdown: one row per dataset x backbone x layer x head, with the best value of each
column in bold within a dataset, the best head's scores per class, fine-tuning and domain shift.

Quality only: timings live in ``timings/`` (they change on every run and would make the report change too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FIGURES", "ReportRow", "markdown_table", "render_markdown", "rows_from_results"]

# the figures render_markdown links to, written beside it by headstart.report.figures
FIGURES = ("fewshot.png", "confusion.png")


@dataclass(frozen=True)
class ReportRow:
    dataset: str
    backbone: str
    layer: str
    head: str
    record: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.backbone}/{self.layer}/{self.head}"

    def metric(self, key: str) -> float | None:
        value = self.record["metrics"].get(key)
        return None if value is None else float(value)

    def few_shot(self, n: int | str) -> float | None:
        for row in self.record.get("few_shot", []):
            if row["n"] == n:
                return float(row["accuracy_mean"])
        return None


def rows_from_results(results: Sequence[Mapping[str, Any]]) -> list[ReportRow]:
    """Flatten the fit stage's results files into report rows."""
    rows = []
    for result in results:
        for layer, record in result["layers"].items():
            rows.append(ReportRow(result["dataset"], result["backbone"], layer, result["head"], record))
    return rows


# column title, value getter, format, higher is better
_Column = tuple[str, Any, str, bool]


def _columns(rows: Sequence[ReportRow]) -> list[_Column]:
    columns: list[_Column] = [
        ("accuracy", lambda r: r.metric("accuracy"), "{:.4f}", True),
        ("balanced acc.", lambda r: r.metric("balanced_accuracy"), "{:.4f}", True),
        ("macro-F1", lambda r: r.metric("macro_f1"), "{:.4f}", True),
    ]
    if any(r.metric("top5_accuracy") is not None for r in rows):
        columns.append(("top-5", lambda r: r.metric("top5_accuracy"), "{:.4f}", True))
    shots = [row["n"] for row in rows[0].record.get("few_shot", []) if row["n"] != "all"] if rows else []
    for n in [s for s in shots if s in (1, 5)] or shots[:1]:
        columns.append((f"{n}-shot", lambda r, n=n: r.few_shot(n), "{:.3f}", True))
    return columns


def _bold_best(rows: Sequence[ReportRow], column: _Column) -> set[int]:
    _, get, fmt, higher = column
    values = [(i, get(r)) for i, r in enumerate(rows) if get(r) is not None]
    if not values:
        return set()
    shown = {i: fmt.format(v) for i, v in values}
    best = (max if higher else min)(v for _, v in values)
    return {i for i, v in values if shown[i] == fmt.format(best)}


def _ci(row: ReportRow) -> str:
    ci = row.record.get("intervals", {}).get("accuracy")
    if not ci or ci.get("n", 1) < 2:
        return ""
    return f" ±{(ci['ci95_high'] - ci['ci95_low']) / 2:.4f}"


def _params(row: ReportRow) -> str:
    chosen = {p: row.record["params"][p] for s in row.record.get("selection", [])[:1] for p in s["params"]}
    return ", ".join(f"{k}={_short(v)}" for k, v in chosen.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[ReportRow]) -> str:
    columns = _columns(rows)
    bold = [_bold_best(rows, c) for c in columns]
    header = ["backbone", "layer", "head"] + [c[0] for c in columns] + ["chosen on val"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns) + ["---"]) + "|"]
    for i, row in enumerate(rows):
        cells = [row.backbone, row.layer, row.head]
        for j, (title, get, fmt, _) in enumerate(columns):
            value = get(row)
            text = "n/a" if value is None else fmt.format(value)
            if title == "accuracy" and value is not None:
                text += _ci(row)
            cells.append(f"**{text}**" if i in bold[j] else text)
        cells.append(_params(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(
    rows: Sequence[ReportRow],
    *,
    finetune: Sequence[Mapping[str, Any]] = (),
    transfer: Sequence[Mapping[str, Any]] = (),
    protocol: Mapping[str, Any] | None = None,
) -> str:
    """The text of ``heads.md`` (it links to the figures :mod:`headstart.report.figures` draws beside it)."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    parts = [
        "# Head comparison",
        "",
        "Test-split scores of every head on every embedding table (dataset x backbone x layer). Hyper-parameters "
        "were chosen on the val split, then each head was refitted on train+val. "
        + (
            f"Seeded heads ran {protocol['seeds']} seeds (± is the 95% confidence interval of the mean). "
            if protocol
            else ""
        )
        + "*k*-shot: mean test accuracy when trained on *k* labelled images per class. Best value per column "
        "and dataset in **bold**. Fit and predict times are in `timings/`.",
        "",
    ]
    for dataset in datasets:
        subset = [r for r in rows if r.dataset == dataset]
        parts += [f"## {dataset}", "", markdown_table(subset), ""]
        best = max(subset, key=lambda r: r.metric("accuracy") or 0.0)
        parts += [
            f"Best: **{best.label}** with test accuracy {best.metric('accuracy'):.4f}. Its scores per class:",
            "",
            _per_class_table(best),
            "",
        ]
    if rows:
        parts += [
            f"![Few-shot curves: test accuracy against labelled images per class]({FIGURES[0]})",
            "",
            f"![Confusion matrix of the best head per dataset]({FIGURES[1]})",
            "",
        ]
    if finetune:
        parts += ["## Fine-tuning", "", _finetune_table(finetune, rows), ""]
    for table in transfer:
        parts += [
            f"## Domain shift: {table['title']}",
            "",
            "Accuracy on each domain's test split.",
            "",
            table["markdown"],
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def _per_class_table(row: ReportRow) -> str:
    lines = ["| class | precision | recall | F1 | test images |", "|---|---:|---:|---:|---:|"]
    for label, scores in row.record["per_class"].items():
        lines.append(
            f"| {label} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1']:.3f} | "
            f"{scores['support']} |"
        )
    return "\n".join(lines)


def _finetune_table(finetune: Sequence[Mapping[str, Any]], rows: Sequence[ReportRow]) -> str:
    lines = [
        "| dataset | backbone | blocks unfrozen | test accuracy | its linear probe | best frozen head | "
        "epochs (best) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for ft in finetune:
        frozen = [r for r in rows if r.dataset == ft["dataset"] and r.backbone == ft["backbone"]]
        best = max(frozen, key=lambda r: r.metric("accuracy") or 0.0) if frozen else None
        best_text = f"{best.metric('accuracy'):.4f} ({best.layer}/{best.head})" if best else "n/a"
        unfrozen = (
            f"{ft['unfrozen_blocks']} ({ft['unfrozen']})" if ft["unfrozen"] == "all" else str(ft["unfrozen_blocks"])
        )
        lines.append(
            f"| {ft['dataset']} | {ft['backbone']} | {unfrozen} | **{ft['test_accuracy']:.4f}** | "
            f"{ft['probe_test_accuracy']:.4f} | {best_text} | {ft['epochs']} ({ft['best_epoch']}) |"
        )
    return "\n".join(lines)
