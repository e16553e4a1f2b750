"""What each sub-command does: build the library's settings types from the flags, check them, call the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from headstart._terminal import tqdm_progress
from headstart.cli.flags import CliError, backbone_spec, embed_options, evaluate_settings, head_params, positive, split

__all__ = ["cmd_backbones", "cmd_datasets", "cmd_embed", "cmd_fit", "cmd_heads", "cmd_neighbours", "cmd_predict"]


def cmd_embed(args: argparse.Namespace) -> int:
    from headstart.data.prepare import prepare_dataset
    from headstart.features.embed import embed

    spec, options, parts = backbone_spec(args), embed_options(args), split(args)
    limit = positive(args.limit, "--limit", none=True)
    name = Path(args.source).name if Path(args.source).exists() else args.source
    prepared = prepare_dataset(
        args.source,
        name=name,
        val=parts.val,
        test=parts.test,
        seed=args.seed,
        shift=args.shift,
        limit=limit,
        root=args.root,
        stat_cache=None if args.no_cache else Path(args.cache_dir).parent / "stat.sqlite",
        labels="none" if args.unlabelled else "auto",
        group_column=args.group_column,
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
        options=options,
        progress=tqdm_progress,
    )
    print(result.summary(), file=sys.stderr)
    for layer, path in result.tables.items():
        print(f"{layer}: {path} ({result.provenance[layer]['dim']}-d)")
    if result.failures:
        print(f"failures: {result.failures_path} ({len(result.failures)} images)")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from headstart.workflow.fit import fit_table
    from headstart.workflow.records import compact_metrics, head_timings

    params, protocol = head_params(args.head, args.set), evaluate_settings(args)
    evaluation, _ = fit_table(
        args.embeddings,
        args.head,
        params,
        args.output,
        seeds=protocol.seeds,
        few_shot=protocol.few_shot,
        seed=args.seed,
        progress=tqdm_progress,
    )
    payload = {
        "head": args.head,
        "params": evaluation.params,
        "test": compact_metrics(evaluation),
        "timings": head_timings(evaluation),
        "model": str(Path(args.output) / "model.json"),
    }
    print(json.dumps(payload, indent=2, default=str))
    return 0


def cmd_neighbours(args: argparse.Namespace) -> int:
    from headstart.pipeline.neighbours import find_neighbours

    k, options = positive(args.k, "-k"), embed_options(args)
    rows = find_neighbours(args.table, args.query, k, options=options, progress=tqdm_progress)
    json_out = bool(args.output and args.output.endswith(".json"))
    text = rows.to_json(orient="records", indent=2) if json_out else rows.to_csv(index=False)
    if args.output:
        from headstart._files import atomic_path

        with atomic_path(args.output) as tmp:
            tmp.write_text(text)
        print(f"{len(rows)} neighbours of {len(args.query)} queries -> {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from headstart.data.tables import load_embeddings
    from headstart.heads.persist import load_head
    from headstart.pipeline.predict import predict_images, predict_table

    top = positive(args.top, "--top")
    options = embed_options(args)
    if args.embeddings:
        if args.inputs:
            raise CliError("give images or --embeddings, not both")
        bundle = load_head(args.model, trust_pickle=args.trust_pickle)
        rows = predict_table(bundle, load_embeddings(args.embeddings), args.embeddings, top=top)
    else:
        if not args.inputs:
            raise CliError("give image files or folders to classify (or --embeddings TABLE)")
        rows = predict_images(
            args.model, args.inputs, options=options, top=top, progress=tqdm_progress, trust_pickle=args.trust_pickle
        )
    column = f"top{top}"
    if args.output and args.output.endswith(".json"):
        text = rows.to_json(orient="records", indent=2)
    else:
        flat = rows.copy()
        flat[column] = [
            ";".join(f"{t['label']}:{t['probability']:.4f}" for t in value) if isinstance(value, list) else ""
            for value in flat[column]
        ]
        text = flat.to_csv(index=False)
    if args.output:
        from headstart._files import atomic_path

        with atomic_path(args.output) as tmp:
            tmp.write_text(text)
        errors = int(pd.notna(rows["error"]).sum()) if "error" in rows else 0
        print(
            f"{len(rows)} predictions -> {args.output}" + (f" ({errors} unreadable images)" if errors else ""),
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from headstart.features.registry import backbone_entry, list_backbones, load_backbone
    from headstart.features.spec import BackboneSpec
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
        entry = backbone_entry(name)
        if not entry.has_weights:
            print(f"{name:28s} (no weights: {entry.description})")
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


def cmd_datasets(args: argparse.Namespace) -> int:
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


def cmd_heads(args: argparse.Namespace) -> int:
    from headstart.heads.registry import list_heads

    for name, head in list_heads().items():
        probe = " (a linear probe: fine-tuning can start from it)" if head.linear_probe else ""
        print(f"{name}: {head.description}{probe}")
        for key, param in head.params.items():
            print(f"    {key}={param.default!r}  ({param.allowed}; a list or {{logspace: [a, b, n]}} is a grid)")
    return 0
