"""Stage `embed`: one dataset x one backbone -> embeddings/<dataset>/<backbone>/<layer>.parquet (+ failures)."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.tables import read_prepared
from headstart.features.engine import embed
from headstart.workflow import layout
from headstart.workflow.config import load_config
from headstart.workflow.records import write_embed_records

log = logging.getLogger("headstart.pipeline.embed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.embed", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument(
        "--finetuned",
        action="store_true",
        help="embed with the fine-tuned checkpoint finetuned/<dataset>/<backbone>/model.pt; writes "
        "embeddings/<dataset>/<backbone>-finetuned",
    )
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds, spec, name = cfg.dataset(args.dataset), cfg.backbone(args.backbone, args.dataset), args.backbone
    prepared = read_prepared(layout.prepared(ds.name))
    meta = prepared.attrs["headstart"]
    dataset = {"name": ds.name, "source": meta.get("source"), "shift": meta.get("shift")}
    if args.finetuned:
        spec = dataclasses.replace(spec, weights=str(layout.finetune_dir(ds.name, name) / "model.pt"))
        name = layout.finetuned_name(name)
    result = embed(
        prepared,
        spec,
        layout.embeddings_dir(ds.name, name),
        dataset=dataset,
        options=cfg.embed,
        progress=tqdm_progress,
    )
    print(f"{ds.name} x {name}: {result.summary()}")
    write_embed_records(ds.name, name, result.metrics())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
