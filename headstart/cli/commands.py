"""What each sub-command that does work does: build the library's settings types from the flags, check them, call the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from headstart._terminal import tqdm_progress
from headstart.cli.flags import (
    CliError,
    backbone_spec,
    embed_options,
    embedding_table,
    evaluate_settings,
    head_params,
    positive,
    split,
)
from headstart.workflow.ray_check import check_engine

__all__ = ["cmd_cache", "cmd_embed", "cmd_fit", "cmd_init", "cmd_neighbours", "cmd_predict"]


def cmd_embed(args: argparse.Namespace) -> int:
    from headstart.data.prepare import prepare_dataset
    from headstart.features.engine import embed
    from headstart.features.warmup import warm_up

    spec, options, parts = backbone_spec(args), embed_options(args), split(args)
    limit = positive(args.limit, "--limit", none=True)
    check_engine(options)
    with warm_up(spec, options, args.source):  # torch imports while the images are listed and hashed
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
            text_column=args.text_column,
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

    table = embedding_table(args.embeddings, "fit")
    params, protocol = head_params(args.head, args.set), evaluate_settings(args)
    evaluation, _ = fit_table(
        table,
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
        **({"left_out_of_evaluation": evaluation.left_out} if evaluation.left_out else {}),
    }
    print(json.dumps(payload, indent=2, default=str))
    return 0


def cmd_neighbours(args: argparse.Namespace) -> int:
    from headstart.workflow.neighbours import find_neighbours

    k, options = positive(args.k, "-k"), embed_options(args)
    table = embedding_table(args.table, "neighbours")
    rows = find_neighbours(table, args.query, k, options=options, progress=tqdm_progress)
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
    from headstart.workflow.predict import predict_images, predict_table

    top = positive(args.top, "--top")
    options = embed_options(args)
    if args.embeddings:
        if args.inputs:
            raise CliError("give images or --embeddings, not both")
        embedding_table(args.embeddings, "predict --embeddings")
        bundle = load_head(args.model)
        rows = predict_table(bundle, load_embeddings(args.embeddings), args.embeddings, top=top)
    else:
        if not args.inputs:
            raise CliError("give image files or folders to classify (or --embeddings TABLE)")
        rows = predict_images(args.model, args.inputs, options=options, top=top, progress=tqdm_progress)
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


def cmd_cache(args: argparse.Namespace) -> int:
    from headstart.features.cache_admin import cache_info, clear, fingerprints_in_use, prune

    if args.action != "prune" and (args.keep_fingerprints_in_use or args.older_than):
        raise CliError(f"--keep-fingerprints-in-use and --older-than go with `cache prune`, not `cache {args.action}`")
    older = _days(args.older_than)
    if args.action == "info":
        entries = cache_info(args.cache_dir, fingerprints_in_use(args.tables))
        if args.json:
            print(json.dumps([e.as_dict() for e in entries], indent=2))
            return 0
        print(f"{args.cache_dir}: {len(entries)} fingerprints, {_size(sum(e.bytes for e in entries))}")
        for e in entries:
            row = e.as_dict()
            print(
                f"  {e.fingerprint}  {e.backbone} ({e.weights})  layers: {', '.join(e.layers) or '-'}  "
                f"{e.images} images in {e.records} records  {_size(e.bytes)}  last written {row['last_written'] or '-'}"
                f"  {'in use' if e.in_use else 'not in use'}"
            )
        return 0
    if args.action == "prune":
        if not args.keep_fingerprints_in_use and older is None:
            raise CliError(
                "say what prune keeps: --keep-fingerprints-in-use and/or --older-than DAYS (or `cache clear`)"
            )
        keep = fingerprints_in_use(args.tables) if args.keep_fingerprints_in_use else None
        result = prune(args.cache_dir, keep=keep, older_than_days=older, dry_run=args.dry_run)
    else:
        result = clear(args.cache_dir, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for e in result.removed:
        print(f"{verb} {e.fingerprint} ({e.backbone}, {_size(e.bytes)})")
    for e in result.busy:
        print(f"left {e.fingerprint}: a running embed holds its lock")
    print(f"{verb} {len(result.removed)} fingerprints ({_size(result.freed_bytes)}), kept {len(result.kept)}")
    return 0


def _days(text: str | None) -> float | None:
    try:
        days = None if text is None else float(text)
    except ValueError:
        raise CliError(f"--older-than takes a number of days, got {text!r}") from None
    if days is not None and days < 0:
        raise CliError(f"--older-than must be 0 or more days, got {text}")
    return days


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def cmd_init(args: argparse.Namespace) -> int:
    from headstart.workflow.scaffold import init_project

    for path in init_project(args.directory, data=args.data, name=args.name, force=args.force):
        print(f"wrote {path}")
    print("next: `dvc repro` (then `git add dvc.yaml dvc.lock params.yaml .dvc/plots .gitignore`)", file=sys.stderr)
    return 0
