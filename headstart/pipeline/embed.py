"""Stage `embed`: one dataset x one backbone -> embeddings/<dataset>/<backbone>/<layer>.parquet (+ failures), as
settings/<dataset>/<backbone>.json says (the engine runs as settings/embed.json says)."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.tables import read_prepared
from headstart.features.engine import embed
from headstart.features.spec import EmbedOptions
from headstart.workflow import layout
from headstart.workflow.ray_check import check_engine
from headstart.workflow.records import write_embed_records
from headstart.workflow.settings import EmbedSettings, read_settings

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
    args = parser.parse_args(argv)
    setup_logging()
    settings = read_settings(EmbedSettings, layout.settings_file(args.dataset, args.backbone))
    options = settings.embed.options(read_settings(EmbedOptions, layout.embed_run_settings()))
    check_engine(options)
    spec, name = settings.spec, args.backbone
    prepared = read_prepared(layout.prepared(args.dataset))
    meta = prepared.attrs["headstart"]
    dataset = {"name": args.dataset, "source": meta.get("source"), "shift": meta.get("shift")}
    if args.finetuned:
        spec = dataclasses.replace(spec, weights=str(layout.finetune_dir(args.dataset, name) / "model.pt"))
        name = layout.finetuned_name(name)
    result = embed(
        prepared,
        spec,
        layout.embeddings_dir(args.dataset, name),
        dataset=dataset,
        options=options,
        progress=tqdm_progress,
    )
    print(f"{args.dataset} x {name}: {result.summary()}")
    write_embed_records(args.dataset, name, result.metrics())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
