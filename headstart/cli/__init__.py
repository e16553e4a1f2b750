"""`headstart`: embed once, fit cheap heads, predict, and see what is available.

    headstart embed digits -o emb.parquet --layer features.13 --image-size 64
    headstart fit emb.parquet --head logreg -o models/logreg
    headstart predict models/logreg path/to/images/ -o predictions.csv
    headstart neighbours emb.parquet --query photo.jpg -k 10
    headstart audit emb.parquet -o audit/      (then open audit/index.html)
    headstart backbones | headstart backbones mobilenet_v2 | headstart datasets | headstart heads
    headstart init [DIR] --data photos/       (then `dvc repro`)
    headstart cache info | headstart cache prune --keep-fingerprints-in-use | headstart cache clear

The DVC stages (dvc.yaml) call the same library code through headstart.pipeline.
"""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging
from headstart.cli.audit import add_audit_parser
from headstart.cli.commands import cmd_cache, cmd_embed, cmd_fit, cmd_init, cmd_neighbours, cmd_predict
from headstart.cli.finetune import add_finetune_parser
from headstart.cli.listings import cmd_backbones, cmd_datasets, cmd_heads
from headstart.features.defaults import (
    DEFAULT_BACKBONE,
    DEFAULT_CACHE_DIR,
    DEFAULT_PRECISION,
    PRETRAINED,
    TORCHVISION_WEIGHTS,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    return run_main(_main, argv)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headstart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "embed",
        help="embed a dataset with a truncated pretrained backbone",
        description="Embed SOURCE (a built-in dataset name, an image folder root/<class>/<image> or a "
        "manifest .csv/.parquet with path[,label][,split] and columns of your own, kept in the table) into an "
        "embedding table. A folder of images without class sub-folders, or a manifest without label, embeds "
        "as an unlabelled collection (null labels).",
    )
    p.add_argument("source")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="OUT.parquet for one layer, or a directory (one <layer>.parquet per layer)",
    )
    p.add_argument(
        "--backbone", default=DEFAULT_BACKBONE, help=f"a name from `headstart backbones` (default {DEFAULT_BACKBONE})"
    )
    p.add_argument(
        "--weights",
        default=PRETRAINED,
        help=f"{PRETRAINED} (default: {TORCHVISION_WEIGHTS} for torchvision models, the model's own for "
        "provider:model names), an exact weights name, a checkpoint path, or none (random initialisation)",
    )
    p.add_argument(
        "--layer",
        action="append",
        dest="layers",
        metavar="NODE",
        help="graph node or module name to cut at; repeat for several (default: default, the pooled "
        "features before the classifier)",
    )
    p.add_argument(
        "--pooling",
        action="append",
        dest="poolings",
        metavar="MODE",
        help="avg (default), max, avgmax, gem or cls; repeat for several",
    )
    p.add_argument("--image-size", help="crop size (default: the weights' own, e.g. 224)")
    p.add_argument("--resize-size", help="resize before the crop (default: the weights' ratio)")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=["fp32", "bf16", "fp16"])
    _embed_run_options(p)
    p.add_argument("--engine", default="local", choices=["local", "ray"], help="local (default) or ray (a cluster)")
    p.add_argument("--address", default="auto", help="Ray cluster address (default auto: a running one, or local)")
    p.add_argument("--rows-per-shard", help="a larger table becomes a directory of shards (default auto: ~256 MB)")
    p.add_argument("--val", default="0.15", help="val fraction per class (default 0.15)")
    p.add_argument("--test", default="0.30", help="test fraction per class (default 0.30)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--shift", help="domain shift, e.g. invert, rotate:30, blur:1.5 (chain with +)")
    p.add_argument("--limit", help="keep a stratified subset of this many images")
    p.add_argument("--root", help="directory of a built-in dataset's files (mnist, fashion-mnist)")
    p.add_argument(
        "--text-column",
        help="SOURCE is a text table (.csv/.parquet) whose texts are in this column (default: text, for a table "
        "with a text column and no path column)",
    )
    p.add_argument(
        "--unlabelled",
        action="store_true",
        help="embed without labels (null label), whatever the source has; automatic for a folder of images "
        "with no class sub-folders and a manifest without a label column",
    )
    p.add_argument("--group-column", help="a manifest column whose groups (patients, sites) each stay in one split")
    p.set_defaults(run=cmd_embed)

    p = sub.add_parser(
        "fit",
        help="fit a head on an embedding table and print its test metrics",
        description="Fit HEAD on the train split (choosing grid parameters on val, then refitting on "
        "train+val), score it on test, save it to MODEL_DIR and print the metrics as JSON.",
    )
    p.add_argument("embeddings", help="an embedding table written by `headstart embed` or the embed stage")
    p.add_argument("--head", required=True, help="a head kind from `headstart heads` (knn, logreg, svm, ncm, ...)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="head parameter, YAML value: k=10, C=[0.1,1,10], C={logspace: [-4, 2, 13]}",
    )
    p.add_argument("--seeds", default="1", help="seeds for seeded heads and few-shot subsets (default 1)")
    p.add_argument("--few-shot", default="", help="comma-separated labels per class, e.g. 1,5,10,all (default: none)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_fit)

    add_finetune_parser(sub)

    p = sub.add_parser("predict", help="classify new images (or an embedding table) with a fitted head")
    p.add_argument("model", help="MODEL_DIR written by `headstart fit` or models/<dataset>/<backbone>/<head>/<layer>")
    p.add_argument("inputs", nargs="*", help="image files and/or folders (a text head: .txt, a text per line, or tables)")
    p.add_argument("--embeddings", help="classify the rows of this embedding table instead of images")
    p.add_argument("-o", "--output", help="predictions.csv or predictions.json (default: CSV on stdout)")
    p.add_argument("--top", default="5", help="how many classes to list per image (default 5)")
    _embed_run_options(p)
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser(
        "neighbours",
        help="the rows of an embedding table nearest to query images or ids (cosine, faiss)",
        description="List the K rows of TABLE most cosine-similar to each query: an image file (embedded with "
        "the table's own backbone settings) or an id of the table. Works on unlabelled tables.",
    )
    p.add_argument("table", help="an embedding table written by `headstart embed` or the embed stage")
    p.add_argument("--query", action="append", required=True, metavar="IMAGE|ID", help="repeat for several")
    p.add_argument("-k", default="10", help="neighbours per query (default 10)")
    p.add_argument("-o", "--output", help="neighbours.csv or neighbours.json (default: CSV on stdout)")
    _embed_run_options(p)
    p.set_defaults(run=cmd_neighbours)
    add_audit_parser(sub)

    p = sub.add_parser("backbones", help="list backbones and whether their weights are on this machine")
    p.add_argument("name", nargs="?", help="show one backbone's graph nodes and default layer")
    p.set_defaults(run=cmd_backbones)

    p = sub.add_parser("datasets", help="list built-in datasets and params.yaml's datasets, and whether present")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(run=cmd_datasets)

    p = sub.add_parser("heads", help="list heads and their parameters")
    p.set_defaults(run=cmd_heads)
    _cache_parser(sub)

    p = sub.add_parser(
        "init",
        help="add headstart's pipeline (dvc.yaml, params.yaml) to a git + DVC repository",
        description="Write dvc.yaml (stages that run the installed headstart), a commented params.yaml (kept if "
        "present) and DVC's few-shot plot template into DIR, the root of a git repository with `dvc init` done.",
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIR")
    p.add_argument("--data", help="your image folder or manifest, relative to DIR (default: the digits demo)")
    p.add_argument("--name", help="the dataset's name in params.yaml (default: from --data)")
    p.add_argument("--force", action="store_true", help="replace an existing dvc.yaml")
    p.set_defaults(run=cmd_init)
    return parser


def _cache_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache",
        help="what the per-image embedding cache holds; prune or clear it",
        description="A fingerprint is in use when an embedding table names it in its provenance (the tables "
        "under embeddings/, or those given with --tables). prune and clear never delete under a running embed.",
    )
    p.add_argument("action", choices=["info", "prune", "clear"])
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help=f"the cache folder (default {DEFAULT_CACHE_DIR})")
    p.add_argument(
        "--tables", nargs="+", default=[], metavar="TABLE", help="embedding tables or folders (default embeddings/)"
    )
    p.add_argument(
        "--keep-fingerprints-in-use", action="store_true", help="prune: keep what the tables use, remove the rest"
    )
    p.add_argument("--older-than", metavar="DAYS", help="prune: only what was last written more than DAYS ago")
    p.add_argument("--dry-run", action="store_true", help="prune, clear: list what would go, delete nothing")
    p.add_argument("--json", action="store_true", help="info: one JSON record per fingerprint")
    p.set_defaults(run=cmd_cache)


def _embed_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", default="auto", help="images per batch (default auto: 16 on a CPU, 64 on a GPU)")
    p.add_argument("--workers", default="auto", help="decoding processes (default auto)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--on-error",
        default="skip",
        choices=["skip", "raise"],
        help="skip: list unreadable images in a failures table; raise: stop at the first",
    )
    p.add_argument(
        "--cache-dir", default=DEFAULT_CACHE_DIR, help=f"per-image embedding cache (default {DEFAULT_CACHE_DIR})"
    )
    p.add_argument(
        "--decode",
        default="jpeg-scaled",
        choices=["jpeg-scaled", "full"],
        help="jpeg-scaled (default): decode JPEGs at the reduced scale the resize needs; full: every pixel",
    )
    p.add_argument("--no-cache", action="store_true", help="use a throw-away cache")


if __name__ == "__main__":
    raise SystemExit(main())
