"""`headstart`: embed once, fit cheap heads, predict, and see what is available.

    headstart embed digits -o emb.parquet --layer features.13 --image-size 64
    headstart fit emb.parquet --head logreg -o models/logreg
    headstart predict models/logreg path/to/images/ -o predictions.csv
    headstart backbones | headstart backbones mobilenet_v2 | headstart datasets | headstart heads

The DVC stages (dvc.yaml) call the same library code through headstart.pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from headstart._terminal import run_main, setup_logging, tqdm_progress

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
        "manifest .csv/.parquet with path,label[,split]) into an embedding table.",
    )
    p.add_argument("source")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="OUT.parquet for one layer, or a directory (one <layer>.parquet per layer)",
    )
    p.add_argument("--backbone", default="mobilenet_v2", help="a name from `headstart backbones`")
    p.add_argument(
        "--weights",
        default=None,
        help="exact weights name (default IMAGENET1K_V1; none for pixels), a checkpoint path, or none",
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
    p.add_argument("--image-size", type=int, help="crop size (default: the weights' own, e.g. 224)")
    p.add_argument("--resize-size", type=int, help="resize before the crop (default: the weights' ratio)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    _embed_run_options(p)
    p.add_argument("--engine", default="local", choices=["local", "ray"], help="local (default) or ray (a cluster)")
    p.add_argument("--address", default="auto", help="Ray cluster address (default auto: a running one, or local)")
    p.add_argument("--rows-per-shard", type=int, help="a larger table becomes a directory of shards (default ~256 MB)")
    p.add_argument("--val", type=float, default=0.15, help="val fraction per class (default 0.15)")
    p.add_argument("--test", type=float, default=0.30, help="test fraction per class (default 0.30)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--shift", help="domain shift, e.g. invert, rotate:30, blur:1.5 (chain with +)")
    p.add_argument("--limit", type=int, help="keep a stratified subset of this many images")
    p.add_argument("--root", help="directory of a built-in dataset's files (mnist, fashion-mnist)")
    p.set_defaults(run=_cmd_embed)

    p = sub.add_parser(
        "fit",
        help="fit a head on an embedding table and print its test metrics",
        description="Fit HEAD on the train split (choosing grid parameters on val, then refitting on "
        "train+val), score it on test, save it to MODEL_DIR and print the metrics as JSON.",
    )
    p.add_argument("embeddings", help="an embedding table written by `headstart embed` or the embed stage")
    p.add_argument("--head", required=True, help="knn, logreg, svm or ncm (`headstart heads`)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="head parameter, YAML value: k=10, C=[0.1,1,10], C={logspace: [-4, 2, 13]}",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds for seeded heads and few-shot subsets (default 1)")
    p.add_argument("--few-shot", default="", help="comma-separated labels per class, e.g. 1,5,10,all (default: none)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_fit)

    p = sub.add_parser("predict", help="classify new images (or an embedding table) with a fitted head")
    p.add_argument("model", help="MODEL_DIR written by `headstart fit` or models/<dataset>/<backbone>/<head>/<layer>")
    p.add_argument("inputs", nargs="*", help="image files and/or folders")
    p.add_argument("--embeddings", help="classify the rows of this embedding table instead of images")
    p.add_argument("-o", "--output", help="predictions.csv or predictions.json (default: CSV on stdout)")
    p.add_argument("--top", type=int, default=5, help="how many classes to list per image (default 5)")
    _embed_run_options(p)
    p.set_defaults(run=_cmd_predict)

    p = sub.add_parser("backbones", help="list backbones and whether their weights are on this machine")
    p.add_argument("name", nargs="?", help="show one backbone's graph nodes and default layer")
    p.set_defaults(run=_cmd_backbones)

    p = sub.add_parser("datasets", help="list built-in datasets and params.yaml's datasets, and whether present")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(run=_cmd_datasets)

    p = sub.add_parser("heads", help="list heads and their parameters")
    p.set_defaults(run=_cmd_heads)
    return parser


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
    p.add_argument("--cache-dir", default=".headstart/cache", help="per-image embedding cache (resume, reuse)")
    p.add_argument("--no-cache", action="store_true", help="use a throw-away cache")


def _options(args: argparse.Namespace) -> Any:
    from headstart.features.embed import EmbedOptions

    workers: Any = args.workers if args.workers == "auto" else int(args.workers)
    batch: Any = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    return EmbedOptions(
        batch_size=batch,
        num_workers=workers,
        device=args.device,
        on_error=args.on_error,
        cache_dir=None if args.no_cache else args.cache_dir,
        engine=getattr(args, "engine", "local"),
        ray_address=getattr(args, "address", "auto"),
        rows_per_shard=getattr(args, "rows_per_shard", None),
    )


def _cmd_embed(args: argparse.Namespace) -> int:
    from headstart.data.prepare import prepare_dataset
    from headstart.features.embed import embed
    from headstart.features.registry import BackboneSpec

    weights = args.weights
    if weights is None:
        weights = None if args.backbone == "pixels" else "IMAGENET1K_V1"
    spec = BackboneSpec(
        arch=args.backbone,
        weights=weights,
        layers=tuple(args.layers or ["default"]),
        pooling=tuple(args.poolings)
        if args.poolings and len(args.poolings) > 1
        else (args.poolings[0] if args.poolings else "avg"),
        image_size=args.image_size,
        resize_size=args.resize_size,
        precision=args.precision,
    )
    name = Path(args.source).name if Path(args.source).exists() else args.source
    prepared = prepare_dataset(
        args.source,
        name=name,
        val=args.val,
        test=args.test,
        seed=args.seed,
        shift=args.shift,
        limit=args.limit,
        root=args.root,
        progress=tqdm_progress,
    )
    meta = prepared.attrs["headstart"]
    dataset = {"name": name, "source": meta["source"], "shift": meta["shift"]}
    output = Path(args.output)
    single = output.suffix == ".parquet"
    result = embed(
        prepared,
        spec,
        None if single else output,
        single_file=output if single else None,
        dataset=dataset,
        options=_options(args),
        progress=tqdm_progress,
    )
    print(result.summary(), file=sys.stderr)
    for layer, path in result.tables.items():
        print(f"{layer}: {path} ({result.provenance[layer]['dim']}-d)")
    if result.failures:
        print(f"failures: {result.failures_path} ({len(result.failures)} images)")
    return 0


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"headstart: error: --set takes KEY=VALUE, got {item!r}")
        params[key.strip()] = yaml.safe_load(value)
    return params


def _parse_few_shot(text: str) -> tuple[int | str, ...]:
    values: list[int | str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        values.append("all" if part == "all" else int(part))
    return tuple(values)


def _cmd_fit(args: argparse.Namespace) -> int:
    from headstart.heads.workflow import compact_metrics, fit_table

    evaluation, _ = fit_table(
        args.embeddings,
        args.head,
        _parse_sets(args.set),
        args.output,
        seeds=args.seeds,
        few_shot=_parse_few_shot(args.few_shot),
        seed=args.seed,
        progress=tqdm_progress,
    )
    payload = {
        "head": args.head,
        "params": evaluation.params,
        "test": compact_metrics(evaluation),
        "model": str(Path(args.output) / "model.joblib"),
    }
    print(json.dumps(payload, indent=2, default=str))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from headstart.data.tables import load_embeddings
    from headstart.heads.persist import load_head
    from headstart.pipeline.predict import predict_images, predict_table

    if args.embeddings:
        if args.inputs:
            raise SystemExit("headstart: error: give images or --embeddings, not both")
        rows = predict_table(load_head(args.model), load_embeddings(args.embeddings), args.embeddings, top=args.top)
    else:
        if not args.inputs:
            raise SystemExit("headstart: error: give image files or folders to classify (or --embeddings TABLE)")
        rows = predict_images(args.model, args.inputs, options=_options(args), top=args.top, progress=tqdm_progress)
    top = f"top{args.top}"
    if args.output and args.output.endswith(".json"):
        text = rows.to_json(orient="records", indent=2)
    else:
        flat = rows.copy()
        flat[top] = [
            ";".join(f"{t['label']}:{t['probability']:.4f}" for t in value) if isinstance(value, list) else ""
            for value in flat[top]
        ]
        text = flat.to_csv(index=False)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        errors = int(pd.notna(rows["error"]).sum()) if "error" in rows else 0
        print(
            f"{len(rows)} predictions -> {args.output}" + (f" ({errors} unreadable images)" if errors else ""),
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def _cmd_backbones(args: argparse.Namespace) -> int:
    from headstart.features.registry import BackboneSpec, list_backbones, load_backbone
    from headstart.features.weights import OFFLINE_SOURCES, checkpoint_path

    if args.name:
        backbone = load_backbone(BackboneSpec(args.name, weights=None))
        default = backbone.default_node()
        print(f"{args.name}: default layer = {default} ({backbone.declared_dim(default) or '?'}-d)")
        print("graph nodes (any of these, or a module name such as features.13, can be a layer):")
        for node in backbone.graph_nodes():
            print(f"  {node}")
        return 0
    import torchvision.models as tvm

    print(f"{'backbone':28s} weights (present on this machine: +, fetchable offline: ~, missing: -)")
    for name in list_backbones():
        if name == "pixels":
            print(f"{name:28s} (no weights: the raw image, resized and flattened)")
            continue
        try:
            enums = list(tvm.get_model_weights(name))
        except (ValueError, KeyError):
            enums = []
        marks = []
        for enum in enums:
            path = checkpoint_path(enum)
            mark = "+" if path.is_file() else "~" if path.name in OFFLINE_SOURCES else "-"
            marks.append(f"{mark}{enum.name}")
        print(f"{name:28s} {' '.join(marks) or '(none)'}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from headstart.data.builtin import BUILTIN_DATASETS
    from headstart.data.sources import SourceError, source_kind

    print("built-in datasets:")
    for name, ds in BUILTIN_DATASETS.items():
        where = ds.locate(None)
        print(f"  {name:15s} {'present' if where else 'missing'}  {ds.description}" + (f"  [{where}]" if where else ""))
    params = Path(args.params)
    if params.exists():
        from headstart.pipeline.config import load_config

        cfg = load_config(params)
        print(f"datasets in {params}:")
        for name, ds in cfg.datasets.items():
            try:
                kind = source_kind(ds.source)
                present = kind != "builtin" or BUILTIN_DATASETS[ds.source].locate(ds.root) is not None
                state = f"{kind}, {'present' if present else 'missing'}"
            except SourceError as err:
                state = f"missing ({err})"
            extra = f", shift {ds.shift}" if ds.shift else ""
            print(f"  {name:15s} {ds.source} ({state}{extra})")
    return 0


def _cmd_heads(args: argparse.Namespace) -> int:
    from headstart.heads.registry import list_heads

    for name, head in list_heads().items():
        print(f"{name}: {head.description}")
        print("    " + ", ".join(f"{k}={v!r}" for k, v in head.defaults.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
