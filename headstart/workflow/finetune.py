"""The finetune stage's work: the probe to start from, the training, and what it writes.

finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/finetune/<dataset>/<backbone>.json (what the
report reads), metrics/finetune/<dataset>/<backbone>.json (quality, for `dvc metrics show`) and
timings/finetune/<dataset>/<backbone>.json (the training time).
"""

from __future__ import annotations

import dataclasses
import logging

from headstart._files import write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings, read_prepared
from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
from headstart.heads.evaluate import SplitData
from headstart.heads.persist import check_provenance, load_head
from headstart.heads.probe import finetuning_probe
from headstart.heads.registry import resolve_params
from headstart.pipeline import layout
from headstart.pipeline.config import Config, ConfigError
from headstart.pipeline.embed import backbone_spec

__all__ = ["finetune_stage"]

log = logging.getLogger(__name__)

_METRICS = ("test_accuracy", "probe_test_accuracy", "val_accuracy", "epochs", "best_epoch", "unfrozen_blocks")


def finetune_stage(cfg: Config, dataset: str, backbone: str, progress: ProgressFactory = null_progress) -> str:
    """Fine-tune ``backbone`` on ``dataset`` from the logreg head's probe; returns a one-line summary."""
    ds, bb, ft = cfg.dataset(dataset), cfg.backbone(backbone), cfg.finetune
    if bb.arch == "pixels":
        raise ConfigError("finetune.backbones names the pixels backbone, which has nothing to fine-tune")
    probes = [h for h in cfg.heads.values() if h.head == "logreg"]
    if not probes:
        raise ConfigError("fine-tuning starts from the logreg head's probe; add a logreg head to params.yaml")
    table = layout.default_table(ds.name, bb.name)
    bundle = load_head(layout.model_dir(ds.name, bb.name, probes[0].name, table.stem))
    embeddings = load_embeddings(table)
    check_provenance(bundle.provenance, embeddings.provenance, fitted_where=str(bundle.path), given_where=str(table))
    # The saved probe was refitted on train+val, and early stopping needs a val split the start has not seen:
    # the probe fine-tuning starts from is fitted on train only, C chosen on val (see finetuning_probe).
    data = SplitData.from_table(embeddings)
    _, grid = resolve_params(bundle.head, probes[0].params)
    Cs = grid.get("C") or [float(bundle.params["C"])]
    mean, scale, weight, bias, classes, C, val_accuracy = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, Cs
    )
    log.info("probe to fine-tune from: C=%.3g, val accuracy %.4f", C, val_accuracy)
    training = {f.name for f in dataclasses.fields(FinetuneSettings)}
    settings = FinetuneSettings(**{k: v for k, v in dataclasses.asdict(ft).items() if k in training}, seed=cfg.seed)
    out = layout.finetune_dir(ds.name, bb.name) / "model.pt"
    result = finetune(
        backbone_spec(bb),
        read_prepared(layout.prepared(ds.name)),
        LinearInit(weight, bias, classes, mean, scale),
        out,
        settings,
        progress=progress,
    )
    summary = {"dataset": ds.name, "backbone": bb.name, "unfrozen": ft.unfreeze, **result.summary()}
    write_json(layout.finetune_results(ds.name, bb.name), summary)
    write_json(layout.finetune_metrics(ds.name, bb.name), {k: summary[k] for k in _METRICS})
    write_json(layout.timings("finetune", ds.name, bb.name), {"train_seconds": round(result.train_seconds, 1)})
    return (
        f"{ds.name} x {bb.name} fine-tuned ({ft.unfreeze} blocks unfrozen): test accuracy "
        f"{result.test_accuracy:.4f} (linear probe {result.probe_test_accuracy:.4f}), best epoch "
        f"{result.best_epoch} of {result.epochs}, {result.train_seconds:.0f} s; {out} sha256 {result.sha256[:12]}..."
    )
