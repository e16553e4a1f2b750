"""Fit one head on one embedding table and write everything the pipeline and the CLI keep of it.

``model_dir/model.json`` + ``model.npz`` (the head with its embeddings' provenance), ``model_dir/metrics.json``
(test quality: no timings, so the same inputs give the same bytes) and ``model_dir/predictions.csv`` (one row per
test image: id, actual, predicted, probability). The folder is built beside ``model_dir`` and swapped in whole.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart._files import atomic_dir, atomic_path, write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings
from headstart.heads.evaluate import HeadEvaluation, SplitData, evaluate_head
from headstart.heads.metrics import class_scores
from headstart.heads.persist import save_head

__all__ = ["compact_metrics", "evaluation_record", "fit_table"]

log = logging.getLogger(__name__)

_TIMINGS = ("seconds", "_per_image")  # metric names that are timings, kept out of the model directory


def fit_table(
    table_path: str | Path,
    head: str,
    params: Mapping[str, Any],
    model_dir: str | Path,
    *,
    name: str | None = None,
    seeds: int = 5,
    few_shot: Sequence[int | str] = (1, 2, 5, 10, 20, "all"),
    seed: int = 0,
    progress: ProgressFactory = null_progress,
) -> tuple[HeadEvaluation, dict[str, Any]]:
    """Run the evaluation protocol for ``head`` on ``table_path`` and save the head into ``model_dir``.

    Returns the evaluation and its JSON-ready record (what the report reads).
    """
    table = load_embeddings(table_path)
    data = SplitData.from_table(table, source=str(table_path))
    evaluation = evaluate_head(head, params, data, seeds=seeds, few_shot=few_shot, seed=seed, progress=progress)
    with atomic_dir(model_dir) as building:
        _write_model_dir(building, table, data, evaluation, head, name)
    return evaluation, evaluation_record(evaluation, table.provenance)


def _write_model_dir(
    model_dir: Path, table: Any, data: SplitData, evaluation: HeadEvaluation, head: str, name: str | None
) -> None:
    save_head(
        model_dir,
        evaluation.model,
        head=head,
        name=name or head,
        params=evaluation.params,
        classes=evaluation.classes,
        provenance=table.provenance,
    )
    test = table.frame["split"].to_numpy() == "test"
    _write_predictions(
        model_dir / "predictions.csv",
        table.frame["id"].to_numpy()[test],
        evaluation,
        class_scores(evaluation.model, data.X_test),
    )
    quality = {k: v for k, v in compact_metrics(evaluation).items() if not k.endswith(_TIMINGS)}
    write_json(model_dir / "metrics.json", quality)


def compact_metrics(evaluation: HeadEvaluation) -> dict[str, Any]:
    """The handful of numbers that go into ``dvc metrics show``."""
    out: dict[str, Any] = {}
    for key, value in evaluation.metrics.items():
        out[key] = round(value, 6)
    ci = evaluation.intervals.get("accuracy")
    if ci and ci["n"] > 1:
        out["accuracy_ci95_low"] = round(ci["ci95_low"], 6)
        out["accuracy_ci95_high"] = round(ci["ci95_high"], 6)
    if evaluation.selection.best_score is not None:
        out["val_accuracy"] = round(evaluation.selection.best_score, 6)
    for row in evaluation.few_shot_summary():
        if row["n"] != "all":
            out[f"fewshot_{row['n']}_accuracy"] = round(row["accuracy_mean"], 6)
    return out


def evaluation_record(evaluation: HeadEvaluation, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the report needs about one head on one table."""
    return {
        "head": evaluation.head,
        "params": evaluation.params,
        "metrics": evaluation.metrics,
        "intervals": evaluation.intervals,
        "per_seed": evaluation.per_seed,
        "per_class": evaluation.per_class,
        "confusion": {"classes": evaluation.classes, "matrix": evaluation.confusion},
        "selection": [{"params": p, "val_accuracy": s} for p, s in evaluation.selection.scores],
        "selection_seconds": evaluation.selection.seconds,
        "few_shot": evaluation.few_shot_summary(),
        "few_shot_runs": [{k: v for k, v in r.items() if k != "per_class"} for r in evaluation.few_shot],
        "provenance": dict(provenance),
    }


def _write_predictions(path: Path, ids: np.ndarray, evaluation: HeadEvaluation, scores: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actual", "predicted", "probability"])
        for item_id, actual, predicted, row in zip(ids, evaluation.y_true, evaluation.y_pred, scores, strict=True):
            writer.writerow([item_id, actual, predicted, f"{row.max():.6f}"])
