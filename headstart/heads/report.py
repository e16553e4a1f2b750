"""The head comparison report: a Markdown table, PNG figures, and the same data for ``dvc plots``.

One row per dataset x backbone x layer x head, with the best value of each column in bold within a dataset.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart._files import atomic_path

__all__ = ["ReportRow", "render_report", "rows_from_results"]


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
    columns += [
        ("fit s", lambda r: r.metric("fit_seconds"), "{:.3f}", False),
        ("predict ms/img", lambda r: r.metric("predict_ms_per_image"), "{:.4f}", False),
    ]
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


def render_report(
    rows: Sequence[ReportRow],
    out_dir: str | Path,
    *,
    finetune: Sequence[Mapping[str, Any]] = (),
    transfer: Sequence[Mapping[str, Any]] = (),
    protocol: Mapping[str, Any] | None = None,
) -> str:
    """Write ``heads.md``, ``fewshot.png``, ``confusion.png`` and ``plots/fewshot.csv`` into ``out_dir``."""
    out_dir = Path(out_dir)
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
        "and dataset in **bold**.",
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
        _fewshot_figure(rows, out_dir / "fewshot.png")
        _confusion_figure(rows, out_dir / "confusion.png")
        _fewshot_csv(rows, out_dir / "plots" / "fewshot.csv")
        parts += [
            "![Few-shot curves: test accuracy against labelled images per class](fewshot.png)",
            "",
            "![Confusion matrix of the best head per dataset](confusion.png)",
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
    text = "\n".join(parts).rstrip() + "\n"
    with atomic_path(out_dir / "heads.md") as tmp:
        tmp.write_text(text)
    return text


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
        "training s | epochs (best) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
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
            f"{ft['probe_test_accuracy']:.4f} | {best_text} | {ft['train_seconds']:.0f} | "
            f"{ft['epochs']} ({ft['best_epoch']}) |"
        )
    return "\n".join(lines)


def _x(row: Mapping[str, Any], n_classes: int) -> float:
    return float(row["n"]) if row["n"] != "all" else row["train_images"] / max(n_classes, 1)


def _fewshot_csv(rows: Sequence[ReportRow], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "curve",
                "dataset",
                "backbone",
                "layer",
                "head",
                "labels_per_class",
                "accuracy_mean",
                "accuracy_low",
                "accuracy_high",
            ]
        )
        for row in rows:
            n_classes = len(row.record["confusion"]["classes"])
            for point in row.record.get("few_shot", []):
                mean, std = point["accuracy_mean"], point["accuracy_std"]
                writer.writerow(
                    [
                        f"{row.dataset}/{row.label}",
                        row.dataset,
                        row.backbone,
                        row.layer,
                        row.head,
                        f"{_x(point, n_classes):.2f}",
                        f"{mean:.4f}",
                        f"{mean - std:.4f}",
                        f"{mean + std:.4f}",
                    ]
                )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fewshot_figure(rows: Sequence[ReportRow], path: Path) -> None:
    plt = _pyplot()
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 5), squeeze=False)
    heads = list(dict.fromkeys(r.head for r in rows))
    features = list(dict.fromkeys((r.backbone, r.layer) for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for row in (r for r in rows if r.dataset == dataset):
            points = row.record.get("few_shot", [])
            if not points:
                continue
            n_classes = len(row.record["confusion"]["classes"])
            xs = [_x(p, n_classes) for p in points]
            mean = [p["accuracy_mean"] for p in points]
            std = [p["accuracy_std"] for p in points]
            color = colors[heads.index(row.head) % len(colors)]
            style = styles[features.index((row.backbone, row.layer)) % len(styles)]
            ax.plot(xs, mean, style, marker="o", ms=3, color=color, label=f"{row.backbone}/{row.layer} {row.head}")
            ax.fill_between(
                xs,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                color=color,
                alpha=0.12,
                lw=0,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images per class (log scale; last point: all)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{dataset}: few-shot learning curves (band: ±1 std over seeds)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def _confusion_figure(rows: Sequence[ReportRow], path: Path) -> None:
    plt = _pyplot()
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 5.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        best = max((r for r in rows if r.dataset == dataset), key=lambda r: r.metric("accuracy") or 0.0)
        classes = best.record["confusion"]["classes"]
        matrix = best.record["confusion"]["matrix"]
        ax.imshow(matrix, cmap="Blues")
        ticks = range(len(classes))
        ax.set_xticks(list(ticks), classes, rotation=45 if max(map(len, classes)) > 2 else 0, ha="right")
        ax.set_yticks(list(ticks), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        top = max(max(r) for r in matrix) or 1
        if len(classes) <= 20:
            for i, line in enumerate(matrix):
                for j, count in enumerate(line):
                    if count:
                        ax.text(
                            j,
                            i,
                            str(count),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if count > top / 2 else "black",
                        )
        ax.set_title(f"{dataset}: {best.label}\ntest accuracy {best.metric('accuracy'):.4f}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
