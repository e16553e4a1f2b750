"""Stage `fit`: one head on every layer of one dataset x backbone; models, metrics, results, confusion plots."""

from __future__ import annotations

import argparse
import csv
import logging

from headstart._files import atomic_path, write_json
from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.heads.workflow import compact_metrics, fit_table
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

log = logging.getLogger("headstart.pipeline.fit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.fit", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("head")
    parser.add_argument("--finetuned", action="store_true", help="the fine-tuned backbone's embeddings")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds, head = cfg.dataset(args.dataset), cfg.head(args.head)
    cfg.backbone(args.backbone)  # a name params.yaml knows
    name = layout.finetuned_name(args.backbone) if args.finetuned else args.backbone
    tables = layout.layer_tables(ds.name, name)
    if not tables:
        raise FileNotFoundError(
            f"no embedding tables in {layout.embeddings_dir(ds.name, name)}; run "
            f"`dvc repro` (the embed stage writes them) first"
        )
    metrics, results = {}, {}
    for layer, table in tables.items():
        evaluation, record = fit_table(
            table,
            head.kind,
            head.params,
            layout.model_dir(ds.name, name, head.name, layer),
            name=head.name,
            seeds=cfg.evaluate.seeds,
            few_shot=cfg.evaluate.few_shot,
            seed=cfg.seed,
            progress=tqdm_progress,
        )
        metrics[layer] = compact_metrics(evaluation)
        results[layer] = record
        with (
            atomic_path(layout.confusion_plot(ds.name, name, head.name, layer)) as tmp,
            open(tmp, "w", newline="") as f,
        ):
            writer = csv.writer(f)
            writer.writerow(["actual", "predicted"])
            writer.writerows(zip(evaluation.y_true, evaluation.y_pred, strict=True))
        m = evaluation.metrics
        print(
            f"{ds.name} x {name} x {layer} x {head.name}: test accuracy {m['accuracy']:.4f}, "
            f"macro-F1 {m['macro_f1']:.4f}, params {evaluation.params}"
        )
    write_json(layout.head_metrics(ds.name, name, head.name), metrics)
    write_json(
        layout.results(ds.name, name, head.name),
        {"dataset": ds.name, "backbone": name, "head": head.name, "kind": head.kind, "layers": results},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
