"""Stage `embed`: one dataset x one backbone -> embeddings/<dataset>/<backbone>/<layer>.parquet (+ failures)."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from headstart._files import write_json
from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.tables import read_prepared
from headstart.features.embed import EmbedOptions, embed
from headstart.features.registry import BackboneSpec
from headstart.pipeline import layout
from headstart.pipeline.config import BackboneConfig, Config, load_config

log = logging.getLogger("headstart.pipeline.embed")


def backbone_spec(bb: BackboneConfig) -> BackboneSpec:
    return BackboneSpec(
        arch=bb.arch,
        weights=bb.weights,
        layers=bb.layers,
        pooling=bb.pooling,
        image_size=bb.image_size,
        resize_size=bb.resize_size,
        precision=bb.precision,
    )


def embed_options(cfg: Config) -> EmbedOptions:
    e = cfg.embed
    return EmbedOptions(
        batch_size=e.batch_size,
        num_workers=e.num_workers,
        device=e.device,
        on_error=e.on_error,
        cache_dir=e.cache_dir,
        max_image_pixels=e.max_image_pixels,
        engine=e.engine,
        ray_address=e.ray.address,
        ray_actors=e.ray.actors,
        rows_per_shard=None if e.rows_per_shard == "auto" else e.rows_per_shard,
    )


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
    ds, bb = cfg.dataset(args.dataset), cfg.backbone(args.backbone)
    prepared = read_prepared(layout.prepared(ds.name))
    meta = prepared.attrs["headstart"]
    dataset = {"name": ds.name, "source": meta.get("source"), "shift": meta.get("shift")}
    spec, name = backbone_spec(bb), bb.name
    if args.finetuned:
        spec = dataclasses.replace(spec, weights=str(layout.finetune_dir(ds.name, bb.name) / "model.pt"))
        name = layout.finetuned_name(bb.name)
    result = embed(
        prepared,
        spec,
        layout.embeddings_dir(ds.name, name),
        dataset=dataset,
        options=embed_options(cfg),
        progress=tqdm_progress,
    )
    print(f"{ds.name} x {name}: {result.summary()}")
    write_json(layout.embed_metrics(ds.name, name), result.metrics())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
