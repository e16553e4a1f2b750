"""The robustness stage's work: every fitted head of a dataset, scored on shifted copies of its test split.

Nothing is refitted and no train image is embedded again: the test images are shifted (``robustness.shifts``,
the same shifts as a dataset's ``shift``: noise, blur, contrast, rotate, JPEG re-compression, ...), embedded
with each backbone's own settings through the per-image cache (a rerun embeds nothing), and every saved head
(``models/<dataset>/<backbone>/<head>/<layer>``) classifies them. The score is each head's selection metric
(accuracy or balanced accuracy, as its grid was chosen), next to its score on the clean test images.

Writes ``results/robustness/<dataset>.json`` (what the report reads) and ``metrics/robustness/<dataset>.json``
(one number per head, layer and shift: quality only, the same bytes for the same inputs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headstart._files import write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.prepare import shift_frame
from headstart.data.tables import EmbeddingTable, load_embeddings, read_prepared
from headstart.errors import UserError
from headstart.features.engine import embed
from headstart.features.spec import BackboneSpec, EmbedOptions
from headstart.heads.metrics import classification_metrics
from headstart.heads.persist import load_head
from headstart.workflow import layout
from headstart.workflow.predict import predict_table
from headstart.workflow.settings import RobustnessSettings

__all__ = ["SCORED", "RobustnessError", "robustness_metrics", "robustness_stage", "score_shifts"]

log = logging.getLogger(__name__)

# the metrics a robustness row holds; a head chosen by log loss is shown by accuracy
SCORED = ("accuracy", "balanced_accuracy", "macro_f1")


class RobustnessError(UserError, ValueError):
    """A dataset the robustness stage cannot score (no test split, no labels)."""


def _backbones(
    settings: RobustnessSettings, specs: Mapping[str, BackboneSpec], dataset: str
) -> list[tuple[str, BackboneSpec]]:
    """(name in models/ and embeddings/, settings) of every backbone this dataset's heads were fitted on."""
    out = [(name, specs[name]) for name in settings.backbones]
    if dataset in settings.finetune_datasets:
        for name in settings.finetune_backbones:
            weights = str(layout.finetune_dir(dataset, name) / "model.pt")
            out.append((layout.finetuned_name(name), dataclasses.replace(specs[name], weights=weights)))
    return out


# Images whose shorter side is more than this many times the largest input side of the dataset's backbones are
# reduced to it before they are shifted (the engine's reduced decoding keeps the same 2x margin): shifts act on
# about what the model sees, and a test split of 12 MP photos is not held in memory as full-size PNGs.
SHIFT_MARGIN = 2


def _input_side(spec: BackboneSpec) -> int:
    """The side a backbone resizes its input to (its resize, else its crop, else the usual 256)."""
    return int(spec.resize_size or spec.image_size or 256)


_SHIFT = "headstart_shift"  # which shift a row of the one combined run of the engine comes from (not kept)


def _rows_of(table: Any, shift: str) -> Any:
    """The rows of ``table`` (an :class:`~headstart.data.tables.EmbeddingTable`) that come from ``shift``."""
    mask = (table.frame[_SHIFT] == shift).to_numpy()
    frame = table.frame[mask].drop(columns=[_SHIFT]).reset_index(drop=True)
    frame.attrs = table.frame.attrs
    return EmbeddingTable(frame, np.ascontiguousarray(table.X[mask]), table.labels[mask])


def score_shifts(bundle: Any, tables: dict[str, Any], metric: str) -> dict[str, dict[str, float]]:
    """Each table (``{"clean": table, "noise:0.03": table, ...}``) classified by a loaded head
    (:func:`headstart.heads.persist.load_head`; its provenance is checked against each table's): accuracy,
    balanced accuracy and macro-F1, the one named ``metric`` first."""
    out = {}
    for shift, table in tables.items():
        predicted = predict_table(bundle, table, source=f"the {shift} test images", top=1)["predicted"].to_numpy()
        scores = classification_metrics(np.asarray(table.labels).astype(str), predicted.astype(str))
        out[shift] = {key: round(scores[key], 6) for key in sorted(SCORED, key=lambda k: k != metric)}
    return out


def robustness_stage(
    settings: RobustnessSettings,
    specs: Mapping[str, BackboneSpec],
    dataset: str,
    *,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressFactory = null_progress,
) -> list[str]:
    """Score every head of ``dataset`` on its shifted test images (``specs``: each backbone's settings for this
    dataset; ``options``: how the engine runs); returns one summary line per backbone."""
    options = settings.embed.options(options)
    prepared = read_prepared(layout.prepared(dataset))
    test = prepared[prepared["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise RobustnessError(f"datasets.{dataset} has no test split to shift; give it split.test > 0")
    if test["label"].isna().any():
        raise RobustnessError(f"datasets.{dataset} is unlabelled: there are no heads to score on shifted images")
    shifts = settings.robustness.shifts
    backbones = _backbones(settings, specs, dataset)
    max_side = SHIFT_MARGIN * max(_input_side(spec) for _, spec in backbones)
    frames = []
    for shift in shifts:
        frame = shift_frame(test, shift, f"{dataset} test", progress, max_side=max_side)
        frames.append(frame.assign(**{_SHIFT: shift}))
    combined = pd.concat(frames, ignore_index=True).sort_values(["id", "path", _SHIFT], kind="stable")
    combined = combined.reset_index(drop=True)

    rows: list[dict[str, Any]] = []
    lines = []
    with tempfile.TemporaryDirectory(prefix="headstart-robustness-") as scratch:
        for name, spec in backbones:
            clean = layout.layer_tables(dataset, name)
            if not clean:
                raise FileNotFoundError(
                    f"no embedding tables in {layout.embeddings_dir(dataset, name)}; run `dvc repro` first"
                )
            tables_by_shift = {"clean": {layer: load_embeddings(p, splits=["test"]) for layer, p in clean.items()}}
            # every shift in one run of the engine: the backbone is loaded (and its threads balanced) once
            out_dir = Path(scratch) / name
            result = embed(combined, spec, out_dir, dataset={"name": f"{dataset} shifted"}, options=options,
                           progress=progress)  # fmt: skip
            if result.failures:
                log.warning("%s x %s: %d shifted test images failed to embed", dataset, name, len(result.failures))
            by_layer = {layer: load_embeddings(out_dir / f"{layer}.parquet") for layer in clean}
            for shift in shifts:
                tables_by_shift[shift] = {layer: _rows_of(table, shift) for layer, table in by_layer.items()}
            for head in settings.heads:
                results_path = layout.results(dataset, name, head)
                chosen = json.loads(results_path.read_text())["layers"] if results_path.exists() else {}
                for layer in clean:
                    model = layout.model_dir(dataset, name, head, layer)
                    metric = (chosen.get(layer) or {}).get("select_by", "accuracy")
                    metric = metric if metric in SCORED else "accuracy"
                    bundle = load_head(model)
                    tables = {shift: tables_by_shift[shift][layer] for shift in ("clean", *shifts)}
                    scores = score_shifts(bundle, tables, metric)
                    rows.append({"backbone": name, "layer": layer, "head": head, "metric": metric, "scores": scores})
            mine = [r for r in rows if r["backbone"] == name]
            if mine and shifts:
                row, shift = max(((r, s) for r in mine for s in shifts), key=lambda pair: _drop(*pair))  # first wins ties
                lines.append(
                    f"{dataset} x {name}: {len(mine)} heads x {len(shifts)} shifts; largest drop {_drop(row, shift):.4f} "
                    f"({row['head']} on {row['layer']}, {shift}, {row['metric']})"
                )
    write_json(
        layout.robustness_results(dataset),
        {"dataset": dataset, "shifts": list(shifts), "test_images": len(test), "rows": rows},
    )
    write_json(layout.robustness_metrics(dataset), robustness_metrics(rows))
    return lines


def _drop(row: dict[str, Any], shift: str) -> float:
    return row["scores"]["clean"][row["metric"]] - row["scores"][shift][row["metric"]]


def robustness_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{backbone: {layer: {head: {shift: score}}}}`` in each head's metric: what `dvc metrics` shows."""
    out: dict[str, Any] = {}
    for row in rows:
        scores = {shift: values[row["metric"]] for shift, values in row["scores"].items()}
        out.setdefault(row["backbone"], {}).setdefault(row["layer"], {})[row["head"]] = scores
    return out
