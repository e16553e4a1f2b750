"""Stage `finetune`: start from the logreg probe on the default layer, unfreeze the last blocks, train a little.

Writes finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/finetune/<dataset>/<backbone>.json (what the
report reads) and metrics/finetune/<dataset>/<backbone>.json (the numbers, for `dvc metrics show`).
"""

from __future__ import annotations

import argparse
import logging

from headstart._files import write_json
from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.tables import load_embeddings, read_prepared
from headstart.features.finetune import LinearInit, finetune
from headstart.heads.evaluate import SplitData
from headstart.heads.persist import check_provenance, load_head
from headstart.heads.registry import get_head, resolve_params
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

log = logging.getLogger("headstart.pipeline.finetune")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.finetune", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds, spec, ft, name = cfg.dataset(args.dataset), cfg.backbone(args.backbone), cfg.finetune, args.backbone
    # params.yaml's checks made sure the backbone is trainable and that probe_head is a linear probe
    probe = cfg.head(ft.probe_head)  # type: ignore[arg-type]
    table = layout.default_table(ds.name, name)
    bundle = load_head(layout.model_dir(ds.name, name, probe.name, table.stem))
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
    out = layout.finetune_dir(ds.name, name) / "model.pt"
    result = finetune(
        spec,
        read_prepared(layout.prepared(ds.name)),
        LinearInit(weight, bias, classes, mean, scale),
        out,
        ft.settings,
        progress=tqdm_progress,
    )
    summary = {"dataset": ds.name, "backbone": name, "unfrozen": ft.settings.unfreeze, **result.summary()}
    write_json(layout.finetune_results(ds.name, name), summary)
    write_json(
        layout.finetune_metrics(ds.name, name),
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
        f"{ds.name} x {name} fine-tuned ({ft.settings.unfreeze} blocks unfrozen): test accuracy "
        f"{result.test_accuracy:.4f} (linear probe {result.probe_test_accuracy:.4f}), best epoch "
        f"{result.best_epoch} of {result.epochs}, {result.train_seconds:.0f} s; {out} sha256 {result.sha256[:12]}..."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
