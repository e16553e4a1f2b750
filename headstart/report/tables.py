"""The head comparison as Markdown: one row per dataset x backbone x layer x head, the best head's scores per
class, fine-tuning, robustness to shifted test images and domain shift.

Honest about certainty: the first column is the metric the heads were chosen by on val (``select_by``); every
test score has a 95% interval over the test images (Wilson for accuracy, a seeded bootstrap for the others);
seed spread is shown only for heads whose fit depends on the seed; a column bolds every row whose interval
overlaps the best row's (none when every row does: the test split cannot tell them apart); and the "Best" line
names the head with the best *val* score, showing only its test score.

Quality only: timings live in ``timings/`` (they change on every run and would make the report change too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIGURES",
    "ReportRow",
    "best_row",
    "markdown_table",
    "render_markdown",
    "rows_from_results",
    "selection_metric",
]

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

    @property
    def select_by(self) -> str:
        return str(self.record.get("select_by", "accuracy"))

    @property
    def val_score(self) -> float | None:
        value = self.record.get("val_score")
        return None if value is None else float(value)

    def interval(self, key: str) -> tuple[float, float] | None:
        """The 95% interval of a test score over test sampling, if the fit stage measured one."""
        found = self.record.get("test_intervals", {}).get(key)
        return None if not found else (float(found["low"]), float(found["high"]))

    def few_shot(self, n: int | str, key: str = "accuracy") -> float | None:
        for row in self.record.get("few_shot", []):
            if row["n"] == n:
                return float(row.get(f"{key}_mean", row["accuracy_mean"]))
        return None

    def few_shot_spread(self, n: int | str, key: str = "accuracy") -> float | None:
        """Half the 95% interval of the k-shot mean over the seeded subsets (None for one subset)."""
        for row in self.record.get("few_shot", []):
            if row["n"] == n and f"{key}_low" in row:
                low, high = row[f"{key}_low"], row[f"{key}_high"]
                return None if low is None or high is None or high <= low else (high - low) / 2
        return None


_TITLES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro-F1",
    "roc_auc": "ROC-AUC",
    "average_precision": "avg. precision",
    "top5_accuracy": "top-5",
}


def selection_metric(rows: Sequence[ReportRow]) -> str:
    """The metric most rows of a dataset were chosen by (``log_loss`` is reported as accuracy)."""
    metrics = [r.select_by for r in rows]
    metric = max(dict.fromkeys(metrics), key=metrics.count) if metrics else "accuracy"
    return metric if metric in _TITLES else "accuracy"


def best_row(rows: Sequence[ReportRow]) -> ReportRow:
    """The row with the best val score of its selection metric (test scores never choose); first among equals."""
    scored = [r for r in rows if r.val_score is not None]
    if not scored:
        return rows[0]
    return max(scored, key=lambda r: r.val_score)  # type: ignore[arg-type, return-value]


def rows_from_results(results: Sequence[Mapping[str, Any]]) -> list[ReportRow]:
    """Flatten the fit stage's results files into report rows."""
    rows = []
    for result in results:
        for layer, record in result["layers"].items():
            rows.append(ReportRow(result["dataset"], result["backbone"], layer, result["head"], record))
    return rows


# column title, metric key (None: no test interval), value getter, format, (k, key) of a few-shot column
_Column = tuple[str, Any, Any, str, Any]


def _columns(rows: Sequence[ReportRow]) -> list[_Column]:
    first = selection_metric(rows)
    keys = [first] + [k for k in _TITLES if k != first and any(r.metric(k) is not None for r in rows)]
    columns: list[_Column] = [(_TITLES[k], k, lambda r, k=k: r.metric(k), "{:.4f}", None) for k in keys]
    shots = [row["n"] for row in rows[0].record.get("few_shot", []) if row["n"] != "all"] if rows else []
    few_key = "balanced_accuracy" if first == "balanced_accuracy" else "accuracy"
    for n in [s for s in shots if s in (1, 5)] or shots[:1]:
        columns.append((f"{n}-shot", None, lambda r, n=n: r.few_shot(n, few_key), "{:.3f}", (n, few_key)))
    return columns


def _bold_overlapping(rows: Sequence[ReportRow], column: _Column) -> set[int]:
    """Rows whose interval overlaps the best row's; none when all do or the column has no intervals."""
    _, key, get, _, _ = column
    spans = {i: r.interval(key) for i, r in enumerate(rows) if key is not None and get(r) is not None}
    if not spans or any(span is None for span in spans.values()):
        return set()
    best = max(spans, key=lambda i: get(rows[i]))
    low = spans[best][0]  # type: ignore[index]
    bold = {i for i, span in spans.items() if span[1] >= low}  # type: ignore[index]
    return set() if len(bold) == len(rows) and len(rows) > 1 else bold


def _ci(row: ReportRow, key: str) -> str:
    interval = row.interval(key)
    text = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    seeds = row.record.get("intervals", {}).get(key)
    if row.record.get("randomized") and seeds and seeds.get("n", 1) > 1:
        text += f" ±{(seeds['ci95_high'] - seeds['ci95_low']) / 2:.4f} (seeds)"
    return text


def _params(row: ReportRow) -> str:
    chosen = {p: row.record["params"][p] for s in row.record.get("selection", [])[:1] for p in s["params"]}
    return ", ".join(f"{k}={_short(v)}" for k, v in chosen.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[ReportRow]) -> str:
    columns = _columns(rows)
    bold = [_bold_overlapping(rows, c) for c in columns]
    header = ["backbone", "layer", "head"] + [c[0] for c in columns] + ["chosen on val"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(columns) + ["---"]) + "|"]
    for i, row in enumerate(rows):
        cells = [row.backbone, row.layer, row.head]
        for j, (_, key, get, fmt, shot) in enumerate(columns):
            value = get(row)
            text = "n/a" if value is None else fmt.format(value)
            if key is not None and value is not None and key in ("accuracy", columns[0][1]):
                text += _ci(row, key)
            spread = row.few_shot_spread(*shot) if shot is not None and value is not None else None
            if spread is not None:
                text += f" ±{spread:.3f}"
            cells.append(f"**{text}**" if i in bold[j] else text)
        cells.append(_params(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(
    rows: Sequence[ReportRow],
    *,
    finetune: Sequence[Mapping[str, Any]] = (),
    transfer: Sequence[Mapping[str, Any]] = (),
    robustness: Sequence[Mapping[str, Any]] = (),
    protocol: Mapping[str, Any] | None = None,
) -> str:
    """The text of ``heads.md`` (it links to the figures :mod:`headstart.report.figures` draws beside it)."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    seeded = list(dict.fromkeys(r.head for r in rows if r.record.get("randomized")))
    parts = [
        "# Head comparison",
        "",
        "Test-split scores of every head on every embedding table (dataset x backbone x layer). Hyper-parameters "
        "were chosen on the val split by each dataset's selection metric (the first column; `select_by: auto` "
        "is balanced accuracy when the largest train class has over 1.5x the images of the smallest, else "
        "accuracy), then each head was refitted on train+val. [low, high] is a 95% interval over the test "
        "images (Wilson for accuracy, a bootstrap of 1000 seeded resamples for the others). "
        + (
            f"Heads whose fit depends on the seed ({', '.join(seeded) or 'none here'}) ran {protocol['seeds']} "
            "seeds: ± (seeds) is the 95% interval of their mean; the others are deterministic and ran once. "
            if protocol
            else ""
        )
        + "*k*-shot: mean test score of the selection metric when trained on *k* labelled images per class, "
        "± the 95% interval of that mean over the seeded subsets of *k* images. "
        "**Bold**: every row whose interval overlaps the best row's (none when all do). Fit and predict times "
        "are in `timings/`.",
        "",
    ]
    for dataset in datasets:
        subset = [r for r in rows if r.dataset == dataset]
        metric = selection_metric(subset)
        parts += [f"## {dataset}", "", f"Chosen by **{_TITLES[metric]}** on val.", "", markdown_table(subset), ""]
        left_out = {k: v for r in subset for k, v in sorted(r.record.get("left_out", {}).items())}
        if left_out:
            named = ", ".join(f"class {label!r} (no {split} image)" for label, split in left_out.items())
            parts += [f"Left out of the evaluation (no image in a split the protocol needs): {named}.", ""]
        best = best_row(subset)
        interval = best.interval(metric)
        shown = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        parts += [
            f"Best (by val {_TITLES[metric]}): **{best.label}** with test {_TITLES[metric]} "
            f"{best.metric(metric) or 0.0:.4f}{shown}. Its scores per class:",
            "",
            _per_class_table(best),
            "",
        ]

    if rows:
        parts += [
            f"![Few-shot curves: test accuracy against labelled images per class]({FIGURES[0]})",
            "",
            f"![Confusion matrix of the best head per dataset, normalised by true class]({FIGURES[1]})",
            "",
        ]
    if finetune:
        parts += ["## Fine-tuning", "", _finetune_table(finetune, rows), ""]
    for result in robustness:
        from headstart.report.robustness import robustness_markdown

        parts += [
            f"## Robustness: {result['dataset']}",
            "",
            f"Each head as fitted above (no refitting), scored on shifted copies of the {result['test_images']} "
            "test images: its selection metric on the clean images, under each shift, and the largest drop "
            "(bold: the shift that costs the row most). A head that loses much here will lose it on real images "
            "that differ in the same way.",
            "",
            robustness_markdown(result),
            "",
        ]
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
        best = best_row(frozen) if frozen else None
        best_text = f"{best.metric('accuracy'):.4f} ({best.layer}/{best.head})" if best else "n/a"
        unfrozen = (
            f"{ft['unfrozen_blocks']} ({ft['unfrozen']})" if ft["unfrozen"] == "all" else str(ft["unfrozen_blocks"])
        )
        lines.append(
            f"| {ft['dataset']} | {ft['backbone']} | {unfrozen} | **{ft['test_accuracy']:.4f}** | "
            f"{ft['probe_test_accuracy']:.4f} | {best_text} | {ft['epochs']} ({ft['best_epoch']}) |"
        )
    return "\n".join(lines)
