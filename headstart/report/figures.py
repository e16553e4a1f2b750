"""The head comparison's figures (few-shot curves, confusion matrices) and the few-shot curves as CSV for
``dvc plots``. PNGs are written without a timestamp or software version, so the same results give the same bytes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headstart._files import atomic_path
from headstart.report.tables import ReportRow

__all__ = ["confusion_figure", "fewshot_csv", "fewshot_figure"]


def _x(row: Mapping[str, Any], n_classes: int) -> float:
    return float(row["n"]) if row["n"] != "all" else row["train_images"] / max(n_classes, 1)


def fewshot_csv(rows: Sequence[ReportRow], path: Path) -> None:
    """One line per few-shot point: the curve, its labelled images per class and the accuracy band."""
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


def fewshot_figure(rows: Sequence[ReportRow], path: Path) -> None:
    """Test accuracy against labelled images per class, one panel per dataset, a band of ±1 std over seeds."""
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


def confusion_figure(rows: Sequence[ReportRow], path: Path) -> None:
    """The confusion matrix of the best head (test accuracy) of each dataset."""
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
