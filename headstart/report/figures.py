"""The head comparison's figures (few-shot curves, confusion matrices) and the few-shot curves as CSV for
``dvc plots``. PNGs are written without a timestamp or software version, so the same results give the same bytes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headstart._files import atomic_path
from headstart.errors import UserError
from headstart.report.tables import ReportRow, best_row, selection_metric

__all__ = ["MissingPlotting", "confusion_figure", "fewshot_csv", "fewshot_figure"]


class MissingPlotting(UserError, ImportError):
    """matplotlib, which draws the figures, is not installed (it comes with the ``pipeline`` extra)."""


def _x(row: Mapping[str, Any], n_classes: int) -> float:
    return float(row["n"]) if row["n"] != "all" else row["train_images"] / max(n_classes, 1)


def _band(point: Mapping[str, Any], key: str) -> tuple[float, float, float]:
    """Mean and 95% interval of the mean over seeds of a few-shot point (older records: ±1 std)."""
    mean = point.get(f"{key}_mean", point["accuracy_mean"])
    if f"{key}_low" in point:
        return mean, point[f"{key}_low"], point[f"{key}_high"]
    std = point.get(f"{key}_std", point["accuracy_std"])
    return mean, mean - std, mean + std


def _few_key(rows: Sequence[ReportRow], dataset: str) -> str:
    metric = selection_metric([r for r in rows if r.dataset == dataset])
    return "balanced_accuracy" if metric == "balanced_accuracy" else "accuracy"


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
                mean, low, high = _band(point, "accuracy")
                writer.writerow(
                    [
                        f"{row.dataset}/{row.label}",
                        row.dataset,
                        row.backbone,
                        row.layer,
                        row.head,
                        f"{_x(point, n_classes):.2f}",
                        f"{mean:.4f}",
                        f"{low:.4f}",
                        f"{high:.4f}",
                    ]
                )


def _pyplot() -> Any:
    try:  # the pipeline extra's: the library and the CLI's embed, fit and predict draw nothing
        import matplotlib
    except ImportError as err:
        raise MissingPlotting(
            "the report's figures need matplotlib; install it with pip install 'headstart[pipeline]'"
        ) from err

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fewshot_figure(rows: Sequence[ReportRow], path: Path) -> None:
    """Small multiples: one panel per dataset and feature set (backbone/layer), heads as colours, the legend
    outside; y is the dataset's selection metric (balanced accuracy or accuracy), the band its 95% interval of
    the mean over the few-shot seeds."""
    plt = _pyplot()
    panels = list(dict.fromkeys((r.dataset, r.backbone, r.layer) for r in rows))
    heads = list(dict.fromkeys(r.head for r in rows))
    columns = min(4, len(panels))
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        lines, columns, figsize=(3.6 * columns + 1.6, 3.0 * lines), squeeze=False, sharex=True, sharey="row"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (dataset, backbone, layer) in zip(axes.ravel(), panels, strict=False):
        key = _few_key(rows, dataset)
        for row in (r for r in rows if (r.dataset, r.backbone, r.layer) == (dataset, backbone, layer)):
            points = row.record.get("few_shot", [])
            if not points:
                continue
            n_classes = len(row.record["confusion"]["classes"])
            xs = [_x(p, n_classes) for p in points]
            mean, low, high = zip(*(_band(p, key) for p in points), strict=True)
            color = colors[heads.index(row.head) % len(colors)]
            ax.plot(xs, mean, "-", marker="o", ms=3, color=color, label=row.head)
            ax.fill_between(xs, low, high, color=color, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_title(f"{dataset}\n{backbone}/{layer}", fontsize=8)
        ax.set_ylabel(key.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.supxlabel(
        "labelled training images per class (log scale; last point: all); band: 95% interval over seeds", fontsize=8
    )
    handles = [plt.Line2D([], [], color=colors[i % len(colors)], marker="o", ms=3) for i in range(len(heads))]
    fig.legend(handles, heads, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="head")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def confusion_figure(rows: Sequence[ReportRow], path: Path) -> None:
    """The confusion matrix of the best head (by val score) of each dataset, each row normalised by its true
    class (a rare class's recall is as visible as a common one's)."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 5.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        subset = [r for r in rows if r.dataset == dataset]
        best, metric = best_row(subset), selection_metric(subset)
        classes = best.record["confusion"]["classes"]
        counts = best.record["confusion"]["matrix"]
        matrix = [[c / max(sum(line), 1) for c in line] for line in counts]
        ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = range(len(classes))
        ax.set_xticks(list(ticks), classes, rotation=45 if max(map(len, classes)) > 2 else 0, ha="right")
        ax.set_yticks(list(ticks), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual (each row sums to 1)")
        if len(classes) <= 20:
            for i, line in enumerate(matrix):
                for j, share in enumerate(line):
                    if counts[i][j]:
                        colour = "white" if share > 0.5 else "black"
                        ax.text(j, i, f"{share:.2f}", ha="center", va="center", fontsize=6, color=colour)
        title = metric.replace("_", " ")
        score = best.metric(metric) or 0.0
        ax.set_title(f"{dataset}: {best.label} (best by val {title})\ntest {title} {score:.4f}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
