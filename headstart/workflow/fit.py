"""Fit heads and write what the pipeline and the CLI keep of them.

:func:`fit_table` (the CLI's ``headstart fit`` and the fit stage): one head on one embedding table, saved into a
model directory (:func:`headstart.heads.persist.save_head`: the head with its embeddings' provenance),
``metrics.json`` (test quality, no timings: a model directory is the same bytes for the same inputs) and
``predictions.csv`` (one row per test image). :func:`fit_stage` (the fit stage): one head on every layer of a
dataset x backbone, with the stage's metrics, results, confusion plots and timings.

A class without a train, val or test image is left out of the evaluation (:mod:`headstart.heads.evaluate`,
which logs a warning naming it): the stage's summary line names it too, and the results record keeps it
(``left_out``), which the report shows under its table.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart._files import atomic_dir, atomic_path, write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings
from headstart.heads.evaluate import HeadEvaluation, SplitData, evaluate_head, left_out_text
from headstart.heads.evaluate_stream import evaluate_head_stream
from headstart.heads.persist import save_head
from headstart.heads.registry import get_head
from headstart.workflow import layout
from headstart.workflow.records import compact_metrics, evaluation_record, head_timings
from headstart.workflow.settings import FitSettings

__all__ = ["fit_stage", "fit_table"]

log = logging.getLogger(__name__)


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
    if get_head(head).streaming(params):  # a table beyond memory: read one row group at a time
        evaluation, streamed = evaluate_head_stream(
            head, dict(params), table_path, seeds=seeds, few_shot=few_shot, seed=seed, progress=progress
        )
        test_ids, provenance = streamed.ids["test"], streamed.provenance
    else:
        table = load_embeddings(table_path)
        data = SplitData.from_table(table, source=str(table_path))
        evaluation = evaluate_head(head, params, data, seeds=seeds, few_shot=few_shot, seed=seed, progress=progress)
        tested = (table.frame["split"].to_numpy() == "test") & ~np.isin(table.labels, list(evaluation.left_out))
        test_ids, provenance = table.frame["id"].to_numpy()[tested], table.provenance
    with atomic_dir(model_dir) as building:  # built beside model_dir and swapped in whole
        _write_model_dir(building, evaluation, head, name, test_ids, provenance)
    return evaluation, evaluation_record(evaluation, provenance)


def _write_model_dir(
    model_dir: Path,
    evaluation: HeadEvaluation,
    head: str,
    name: str | None,
    test_ids: np.ndarray,
    provenance: Mapping[str, Any],
) -> None:
    save_head(
        model_dir,
        evaluation.model,
        head=head,
        name=name or head,
        params=evaluation.params,
        classes=evaluation.classes,
        provenance=provenance,
    )
    _write_predictions(model_dir / "predictions.csv", test_ids, evaluation, evaluation.test_scores)
    write_json(model_dir / "metrics.json", compact_metrics(evaluation))


def fit_stage(
    settings: FitSettings,
    dataset: str,
    backbone: str,
    *,
    finetuned: bool = False,
    progress: ProgressFactory = null_progress,
) -> list[str]:
    """One head on every layer of ``dataset`` x ``backbone`` (its fine-tuned copy if ``finetuned``); writes
    models, metrics (quality), results (what the report reads), confusion plots and timings. Returns one summary
    line per layer."""
    h, evaluate = settings.head, settings.evaluate
    name = layout.finetuned_name(backbone) if finetuned else backbone
    tables = layout.layer_tables(dataset, name)
    if not tables:
        raise FileNotFoundError(
            f"no embedding tables in {layout.embeddings_dir(dataset, name)}; run "
            f"`dvc repro` (the embed stage writes them) first"
        )
    for stale in (layout.head_models(dataset, name, h.name), layout.confusion_plots(dataset, name, h.name)):
        shutil.rmtree(stale, ignore_errors=True)  # layers no longer embedded leave nothing behind
    metrics, results, timings, lines = {}, {}, {}, []
    for layer, table in tables.items():
        evaluation, record = fit_table(
            table,
            h.kind,
            h.params,
            layout.model_dir(dataset, name, h.name, layer),
            name=h.name,
            seeds=evaluate.seeds,
            few_shot=evaluate.few_shot,
            seed=settings.seed,
            progress=progress,
        )
        metrics[layer], results[layer], timings[layer] = compact_metrics(evaluation), record, head_timings(evaluation)
        with (
            atomic_path(layout.confusion_plot(dataset, name, h.name, layer)) as tmp,
            open(tmp, "w", newline="") as f,
        ):
            writer = csv.writer(f)
            writer.writerow(["actual", "predicted"])
            writer.writerows(zip(evaluation.y_true, evaluation.y_pred, strict=True))
        m = evaluation.metrics
        left_out = f"; left out of the evaluation: {left_out_text(evaluation.left_out)}" if evaluation.left_out else ""
        lines.append(
            f"{dataset} x {name} x {layer} x {h.name}: test accuracy {m['accuracy']:.4f}, "
            f"macro-F1 {m['macro_f1']:.4f}, params {evaluation.params}{left_out}"
        )
    write_json(layout.head_metrics(dataset, name, h.name), metrics)
    write_json(layout.timings("heads", dataset, name, h.name), timings)
    write_json(
        layout.results(dataset, name, h.name),
        {"dataset": dataset, "backbone": name, "head": h.name, "kind": h.kind, "layers": results},
    )
    return lines


def _write_predictions(path: Path, ids: np.ndarray, evaluation: HeadEvaluation, scores: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actual", "predicted", "probability"])
        for item_id, actual, predicted, row in zip(ids, evaluation.y_true, evaluation.y_pred, scores, strict=True):
            writer.writerow([item_id, actual, predicted, f"{row.max():.6f}"])
