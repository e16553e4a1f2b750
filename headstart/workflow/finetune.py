"""The finetune stage's work: the probe to start from, the training, and what it writes.

finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/finetune/<dataset>/<backbone>.json (what the
report reads), metrics/finetune/<dataset>/<backbone>.json (quality, for `dvc metrics show`) and
timings/finetune/<dataset>/<backbone>.json (the training time).
"""

from __future__ import annotations

import logging

from headstart._files import write_json
from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings, read_prepared
from headstart.features.finetune import LinearInit, finetune
from headstart.heads.evaluate import SplitData
from headstart.heads.persist import check_provenance, load_head
from headstart.heads.registry import get_head, resolve_params
from headstart.workflow import layout
from headstart.features.spec import BackboneSpec
from headstart.workflow.settings import FinetuneStageSettings

__all__ = ["finetune_stage"]

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
    mean, scale, weight, bias, classes, choice, val_accuracy = get_head(probe.kind).probe(  # type: ignore[misc]
        fixed, grid, data.X_train, data.y_train, data.X_val, data.y_val
    )
    log.info("probe to fine-tune from: %s, val accuracy %.4f", choice, val_accuracy)
    out = layout.finetune_dir(dataset, name) / "model.pt"
    result = finetune(
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
