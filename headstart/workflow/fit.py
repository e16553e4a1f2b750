"""Fit heads and write what the pipeline and the CLI keep of them.

:func:`fit_table` (the CLI's ``headstart fit`` and the fit stage): one head on one embedding table, saved into a
model directory: ``model.joblib`` (the head with its embeddings' provenance), ``metrics.json`` (test quality, no
timings: a model directory is the same bytes for the same inputs) and ``predictions.csv`` (one row per test
image). :func:`fit_stage`: one head on every layer of a dataset x backbone, with the stage's metrics, results,
confusion plots and timings; :func:`fit_heads` (the fit stage): every head, each fitted again only when its
inputs changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart._files import atomic_dir, atomic_path, write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings
from headstart.heads.evaluate import HeadEvaluation, SplitData, evaluate_head
from headstart.heads.persist import save_head
from headstart.workflow import layout
from headstart.workflow.config import Config
from headstart.workflow.records import compact_metrics, evaluation_record, head_timings

__all__ = ["fit_heads", "fit_stage", "fit_table"]

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
    from headstart.heads.registry import get_head

    if get_head(head).streaming(params):  # a table beyond memory: read one row group at a time
        from headstart.heads.evaluate_stream import evaluate_head_stream

        evaluation, streamed = evaluate_head_stream(
            head, dict(params), table_path, seeds=seeds, few_shot=few_shot, seed=seed, progress=progress
        )
        test_ids, provenance = streamed.ids["test"], streamed.provenance
    else:
        table = load_embeddings(table_path)
        data = SplitData.from_table(table, source=str(table_path))
        evaluation = evaluate_head(head, params, data, seeds=seeds, few_shot=few_shot, seed=seed, progress=progress)
        test_ids, provenance = table.frame["id"].to_numpy()[table.frame["split"].to_numpy() == "test"], table.provenance
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


def fit_heads(
    cfg: Config,
    dataset: str,
    backbone: str,
    heads: Sequence[str] | None = None,
    *,
    finetuned: bool = False,
    progress: ProgressFactory = null_progress,
) -> list[str]:
    """Every head of params.yaml (or ``heads``) on every layer of ``dataset`` x ``backbone``: the fit stage.

    A head whose inputs did not change since its outputs were written (the same tables, settings and headstart
    code: the digest its results file keeps) is not fitted again, so one stage serves every head and a change to
    one head refits that head only. Outputs of heads params.yaml no longer has are removed. Returns the summary
    lines."""
    names = list(heads) if heads is not None else list(cfg.heads)
    name = layout.finetuned_name(backbone) if finetuned else backbone
    lines: list[str] = []
    digests: dict[str, str] = {}
    for head in names:
        lines += fit_stage(cfg, dataset, backbone, head, finetuned=finetuned, progress=progress, _digests=digests)
    if heads is None:
        _remove_stale(dataset, name, set(names))
    return lines


def fit_stage(
    cfg: Config,
    dataset: str,
    backbone: str,
    head: str,
    *,
    finetuned: bool = False,
    progress: ProgressFactory = null_progress,
    reuse: bool = True,
    _digests: dict[str, str] | None = None,
) -> list[str]:
    """One head on every layer of ``dataset`` x ``backbone`` (its fine-tuned copy if ``finetuned``); writes
    models, metrics (quality), results (what the report reads), confusion plots and timings, unless they are
    there already for the same inputs (``reuse=False`` fits again anyway). Returns one summary line per layer."""
    ds, h = cfg.dataset(dataset), cfg.head(head)
    cfg.backbone(backbone)  # a name params.yaml knows
    name = layout.finetuned_name(backbone) if finetuned else backbone
    tables = layout.layer_tables(ds.name, name)
    if not tables:
        raise FileNotFoundError(
            f"no embedding tables in {layout.embeddings_dir(ds.name, name)}; run "
            f"`dvc repro` (the embed stage writes them) first"
        )
    inputs = _inputs_digest(cfg, h.name, tables, {} if _digests is None else _digests)
    if reuse and _fitted_already(ds.name, name, h.name, list(tables), inputs):
        log.info("%s x %s x %s: inputs unchanged since its last fit, kept", ds.name, name, h.name)
        timings = layout.timings("heads", ds.name, name, h.name)
        if not timings.is_file():  # not in git: a fresh clone has none; this run measured no fit
            write_json(timings, {layer: {} for layer in tables})
        return [f"{ds.name} x {name} x {h.name}: unchanged, kept"]
    metrics, results, timings, lines = {}, {}, {}, []
    for layer, table in tables.items():
        evaluation, record = fit_table(
            table,
            h.kind,
            h.params,
            layout.model_dir(ds.name, name, h.name, layer),
            name=h.name,
            seeds=cfg.evaluate.seeds,
            few_shot=cfg.evaluate.few_shot,
            seed=cfg.seed,
            progress=progress,
        )
        metrics[layer], results[layer], timings[layer] = compact_metrics(evaluation), record, head_timings(evaluation)
        with (
            atomic_path(layout.confusion_plot(ds.name, name, h.name, layer)) as tmp,
            open(tmp, "w", newline="") as f,
        ):
            writer = csv.writer(f)
            writer.writerow(["actual", "predicted"])
            writer.writerows(zip(evaluation.y_true, evaluation.y_pred, strict=True))
        m = evaluation.metrics
        lines.append(
            f"{ds.name} x {name} x {layer} x {h.name}: test accuracy {m['accuracy']:.4f}, "
            f"macro-F1 {m['macro_f1']:.4f}, params {evaluation.params}"
        )
    write_json(layout.head_metrics(ds.name, name, h.name), metrics)
    write_json(layout.timings("heads", ds.name, name, h.name), timings)
    write_json(  # last: its digest vouches for the files above
        layout.results(ds.name, name, h.name),
        {"dataset": ds.name, "backbone": name, "head": h.name, "kind": h.kind, "inputs": inputs, "layers": results},
    )
    return lines


def _inputs_digest(cfg: Config, head: str, tables: Mapping[str, Path], cache: dict[str, str]) -> str:
    """What a head's outputs depend on: its tables' bytes, its settings (kind, parameters, protocol, seed) and the
    headstart code."""
    from headstart.workflow.settings import head_settings

    for path in tables.values():
        if str(path) not in cache:
            cache[str(path)] = _file_digest(path)
    if "code" not in cache:
        cache["code"] = _code_digest()
    payload = {
        "tables": {layer: cache[str(path)] for layer, path in tables.items()},
        "head": head_settings(cfg, head),
        "code": cache["code"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    """A table's bytes: the file, or each shard of a directory by name."""
    from headstart.data.hashing import file_id

    parts = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    return ",".join(f"{part.relative_to(path).as_posix() if path.is_dir() else ''}:{file_id(part)}" for part in parts)


def _code_digest() -> str:
    import headstart

    root = Path(headstart.__file__).parent
    digest = hashlib.sha256()
    for source in sorted(root.rglob("*.py")):
        digest.update(source.relative_to(root).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _fitted_already(dataset: str, name: str, head: str, layers: list[str], inputs: str) -> bool:
    try:
        kept = json.loads(layout.results(dataset, name, head).read_text())
    except (OSError, ValueError):
        return False
    if kept.get("inputs") != inputs or sorted(kept.get("layers", {})) != sorted(layers):
        return False
    needed = [layout.head_metrics(dataset, name, head)]
    for layer in layers:
        needed += [layout.model_dir(dataset, name, head, layer) / "model.json"]
        needed += [layout.confusion_plot(dataset, name, head, layer)]
    return all(path.is_file() for path in needed)


def _remove_stale(dataset: str, name: str, heads: set[str]) -> None:
    """Outputs of heads that params.yaml no longer has (the stage's output folders persist between runs)."""
    folders = [
        layout.model_dir(dataset, name, "x", "x").parent.parent,
        layout.confusion_plot(dataset, name, "x", "x").parent.parent,
    ]
    files = [
        layout.results(dataset, name, "x").parent,
        layout.head_metrics(dataset, name, "x").parent,
        layout.timings("heads", dataset, name, "x").parent,
    ]
    for folder in folders:
        for child in folder.iterdir() if folder.is_dir() else []:
            if child.is_dir() and child.name not in heads:
                shutil.rmtree(child)
    for folder in files:
        for child in folder.glob("*.json") if folder.is_dir() else []:
            if child.stem not in heads:
                child.unlink()


def _write_predictions(path: Path, ids: np.ndarray, evaluation: HeadEvaluation, scores: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actual", "predicted", "probability"])
        for item_id, actual, predicted, row in zip(ids, evaluation.y_true, evaluation.y_pred, scores, strict=True):
            writer.writerow([item_id, actual, predicted, f"{row.max():.6f}"])
