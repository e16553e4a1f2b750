"""Fine-tuning's work for the stage, the CLI and the notebook: the probe to start from, the training, what it
writes.

:func:`finetune_stage` (the DVC stage) writes
finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/finetune/<dataset>/<backbone>.json (what the
report reads), metrics/finetune/<dataset>/<backbone>.json (quality, for `dvc metrics show`) and
timings/finetune/<dataset>/<backbone>.json (the training time). :func:`finetune_prepared` (``headstart
finetune``, ``headstart.finetune``) does the same from a prepared table into one folder, embedding the frozen
features for the probe first.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headstart._files import write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.prepare import prepare_dataset
from headstart.data.tables import load_embeddings, read_prepared
from headstart.features.defaults import DEFAULT_CACHE_DIR, DEFAULT_POOLING, PRETRAINED, backbone_spec
from headstart.features.engine import embed
from headstart.features.finetune import FinetunedBackbone, FinetuneSettings, LinearInit
from headstart.features.finetune.loop import selection_metric
from headstart.features.finetune.tune import FinetuneResult
from headstart.features.finetune.tune import finetune as finetune_network
from headstart.features.spec import BackboneSpec, EmbedOptions
from headstart.heads.evaluate import SplitData
from headstart.heads.intervals import test_intervals
from headstart.heads.metrics import classification_metrics
from headstart.heads.parallel import single_threaded
from headstart.heads.persist import check_provenance, load_head
from headstart.heads.registry import get_head, resolve_params
from headstart.workflow import layout
from headstart.workflow.settings import FinetuneStageSettings

__all__ = ["FinetuneReport", "finetune", "finetune_prepared", "finetune_stage", "test_scores"]

log = logging.getLogger(__name__)

_METRICS = ("test_accuracy", "probe_test_accuracy", "val_accuracy", "epochs", "best_epoch", "unfrozen_blocks")


def finetune_stage(
    settings: FinetuneStageSettings,
    spec: BackboneSpec,
    dataset: str,
    backbone: str,
    progress: ProgressFactory = null_progress,
) -> str:
    """Fine-tune ``backbone`` (``spec``: its settings for ``dataset``) on ``dataset`` from the probe head's linear
    probe; returns a one-line summary."""
    # params.yaml's checks made sure the backbone is trainable and that the probe head is a linear probe
    probe, ft, name = settings.probe, settings.settings, backbone
    table = layout.default_table(dataset, name)
    bundle = load_head(layout.model_dir(dataset, name, probe.name, table.stem))
    embeddings = load_embeddings(table)
    check_provenance(bundle.provenance, embeddings.provenance, fitted_where=str(bundle.path), given_where=str(table))
    # The saved probe was refitted on train+val, and early stopping needs a val split the start has not seen:
    # the probe fine-tuning starts from is fitted on train only, C chosen on val (see finetuning_probe).
    data = SplitData.from_table(embeddings)
    fixed, grid = resolve_params(probe.kind, probe.params, f"heads.{probe.name}")
    fit_probe = single_threaded(get_head(probe.kind).probe)  # type: ignore[misc]
    mean, scale, weight, bias, classes, choice, val_accuracy = fit_probe(
        fixed, grid, data.X_train, data.y_train, data.X_val, data.y_val
    )
    log.info("probe to fine-tune from: %s, val accuracy %.4f", choice, val_accuracy)
    out = layout.finetune_dir(dataset, name) / "model.pt"
    result = finetune_network(
        spec,
        read_prepared(layout.prepared(dataset)),
        LinearInit(weight, bias, classes, mean, scale),
        out,
        ft,
        progress=progress,
    )
    summary = {"dataset": dataset, "backbone": name, "unfrozen": ft.unfreeze, **result.summary()}
    write_json(layout.finetune_results(dataset, name), summary)
    write_json(layout.finetune_metrics(dataset, name), {k: summary[k] for k in _METRICS})
    write_json(layout.timings("finetune", dataset, name), {"train_seconds": round(result.train_seconds, 1)})
    return (
        f"{dataset} x {name} fine-tuned ({ft.unfreeze} blocks unfrozen): test accuracy "
        f"{result.test_accuracy:.4f} (linear probe {result.probe_test_accuracy:.4f}), best epoch "
        f"{result.best_epoch} of {result.epochs}, {result.train_seconds:.0f} s; {out} sha256 {result.sha256[:12]}..."
    )


@dataclass
class FinetuneReport:
    """What ``headstart finetune`` and ``headstart.finetune`` did: the backbone to embed with from now on, the
    probe it started from and the test scores of both (the probe on the frozen features, the fine-tuned network
    with its own head), each with its 95% interval over the test items."""

    backbone: FinetunedBackbone
    result: FinetuneResult
    probe: dict[str, Any]
    test: dict[str, Any]
    select_by: str

    def payload(self) -> dict[str, Any]:
        """What the CLI prints and ``finetune.json`` holds."""
        return {
            "backbone": self.backbone.arch,
            "checkpoint": str(self.backbone.checkpoint),
            "sha256": self.result.sha256,
            "select_by": self.select_by,
            "test": self.test,
            "frozen_probe": self.probe,
            "unfrozen": self.result.unfrozen,
            "best_epoch": self.result.best_epoch,
            "epochs": self.result.epochs,
            "train_seconds": round(self.result.train_seconds, 1),
            "embed_with": f"--backbone {self.backbone.arch} --weights {self.backbone.checkpoint}",
        }


def test_scores(labels: list[str], predicted: list[str]) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 with their 95% intervals (Wilson, bootstrap), as ``fit`` prints."""
    y_true, y_pred = np.asarray(labels, dtype=object), np.asarray(predicted, dtype=object)
    metrics = classification_metrics(y_true, y_pred)
    out = {k: round(v, 6) for k, v in metrics.items()}
    for key, interval in test_intervals(y_true, y_pred, None, np.unique(y_true), metrics).items():
        out[f"{key}_test_low"], out[f"{key}_test_high"] = round(interval["low"], 6), round(interval["high"], 6)
    return out


def finetune_prepared(
    prepared: pd.DataFrame,
    spec: BackboneSpec,
    out_dir: str | Path,
    settings: FinetuneSettings = FinetuneSettings(),
    options: EmbedOptions = EmbedOptions(),
    dataset: dict[str, Any] | None = None,
    progress: ProgressFactory = null_progress,
) -> FinetuneReport:
    """Embed ``prepared``'s default layer (``out_dir/frozen.parquet``), fit the logreg probe on train (C on
    val), fine-tune from it (``out_dir/model.pt``) and score both on test (``out_dir/finetune.json``)."""
    out = Path(out_dir)
    spec = dataclasses.replace(spec, layers=("default",), pooling=spec.poolings[0])
    frozen = out / "frozen.parquet"
    embed(prepared, spec, single_file=frozen, dataset=dataset, options=options, progress=progress)
    data = SplitData.from_table(load_embeddings(frozen))
    fixed, grid = resolve_params("logreg", {}, "heads.logreg")
    fit_probe = single_threaded(get_head("logreg").probe)  # type: ignore[misc]
    mean, scale, weight, bias, classes, choice, val_score = fit_probe(
        fixed, grid, data.X_train, data.y_train, data.X_val, data.y_val
    )
    log.info("probe to fine-tune from: %s, val score %.4f", choice, val_score)
    init = LinearInit(weight, bias, classes, mean, scale)
    result = finetune_network(spec, prepared, init, out / "model.pt", settings, progress=progress)
    metric = selection_metric(settings.select_by, [classes.index(y) for y in data.y_train if y in classes])
    test = test_scores(result.test_labels, result.test_predicted)
    report = FinetuneReport(
        backbone=FinetunedBackbone(spec.arch, out / "model.pt", test),
        result=result,
        probe={"choice": str(choice), **test_scores(result.test_labels, result.probe_predicted)},
        test=test,
        select_by=metric,
    )
    write_json(out / "finetune.json", report.payload())
    return report


def finetune(
    source: str | Path,
    backbone: str,
    out_dir: str | Path,
    *,
    weights: str | None = PRETRAINED,
    pooling: str = DEFAULT_POOLING,
    image_size: int | None = None,
    val: float = 0.15,
    test: float = 0.30,
    seed: int = 0,
    limit: int | None = None,
    text_column: str | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    **settings: Any,
) -> FinetunedBackbone:
    """Fine-tune ``backbone`` on ``source`` (as ``headstart finetune``) into ``out_dir``; returns the fine-tuned
    backbone, which ``headstart.embed``, ``headstart.Encoder`` and a head's ``predict`` take as a backbone.

    ``settings`` are :class:`~headstart.features.spec.FinetuneSettings` fields (``unfreeze``, ``epochs``,
    ``head_lr``, ...); the split arguments and defaults are those of ``headstart.embed``.

    >>> tuned = headstart.finetune("fortunes", "sentence-transformers:all-MiniLM-L6-v2", "ft/")  # doctest: +SKIP
    >>> tuned.metrics["accuracy"], tuned.checkpoint                                       # doctest: +SKIP
    >>> emb = headstart.embed("fortunes", tuned)                                          # doctest: +SKIP
    """
    spec = backbone_spec(backbone, weights=weights, pooling=pooling, image_size=image_size)
    name = Path(source).name if Path(source).exists() else str(source)
    prepared = prepare_dataset(str(source), name=name, val=val, test=test, seed=seed, limit=limit,
                               text_column=text_column)  # fmt: skip
    meta = prepared.attrs["headstart"]
    dataset = {"name": name, "source": meta["source"], "shift": meta["shift"]}
    ft = FinetuneSettings(**{"seed": seed, **settings})
    options = EmbedOptions(cache_dir=cache_dir, device=ft.device)
    return finetune_prepared(prepared, spec, out_dir, ft, options, dataset).backbone
