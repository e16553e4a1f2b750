"""Stage `finetune`: start from the logreg probe on the default layer, unfreeze the last blocks, train a little.

Writes finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/finetune/<dataset>/<backbone>.json (what the
report reads) and metrics/finetune/<dataset>/<backbone>.json (the numbers, for `dvc metrics show`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from headstart._files import write_json
from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.tables import load_embeddings, read_prepared
from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
from headstart.heads.evaluate import SplitData
from headstart.heads.persist import check_provenance, load_head
from headstart.heads.probe import finetuning_probe
from headstart.heads.registry import resolve_params
from headstart.pipeline import layout
from headstart.pipeline.config import ConfigError, load_config
from headstart.pipeline.embed import backbone_spec

log = logging.getLogger("headstart.pipeline.finetune")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.finetune", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds, bb, ft = cfg.dataset(args.dataset), cfg.backbone(args.backbone), cfg.finetune
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
        progress=tqdm_progress,
    )
    summary = {"dataset": ds.name, "backbone": bb.name, "unfrozen": ft.unfreeze, **result.summary()}
    write_json(layout.finetune_results(ds.name, bb.name), summary)
    write_json(
        layout.finetune_metrics(ds.name, bb.name),
        {
            k: summary[k]
            for k in (
                "test_accuracy",
                "probe_test_accuracy",
                "val_accuracy",
                "train_seconds",
                "epochs",
                "best_epoch",
                "unfrozen_blocks",
            )
        },
    )
    print(
        f"{ds.name} x {bb.name} fine-tuned ({ft.unfreeze} blocks unfrozen): test accuracy "
        f"{result.test_accuracy:.4f} (linear probe {result.probe_test_accuracy:.4f}), best epoch "
        f"{result.best_epoch} of {result.epochs}, {result.train_seconds:.0f} s; {out} sha256 {result.sha256[:12]}..."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
