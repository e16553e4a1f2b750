"""`headstart audit TABLE -o DIR`: near-duplicates and leakage, likely label errors, outliers, confused classes
and a map of an embedding table, as finding tables, a summary and a page that opens from disk."""

from __future__ import annotations

import argparse
import json

from headstart.cli.flags import CliError, embedding_table, head_params, positive

__all__ = ["add_audit_parser", "cmd_audit"]


def add_audit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="find near-duplicates, train/test leakage, likely label errors and outliers; browse them on a page",
        description="Audit TABLE into DIR: index.html (open it in a browser, no server needed), duplicates.parquet, "
        "label_issues.parquet, outliers.parquet and summary.json (the head's test score with and without the test "
        "images that have a near-copy in train). Label checks need a labelled table with train and test splits.",
    )
    p.add_argument("table", help="an embedding table written by `headstart embed` or the embed stage")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--prepared", help="the prepared table the embeddings come from, for images without a file "
                   "(built-in datasets: data/prepared/<dataset>.parquet)")  # fmt: skip
    p.add_argument("--head", default="logreg", help="the head whose out-of-sample probabilities score the labels")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="head parameter (as for fit)")
    p.add_argument("--cosine", default="0.995", help="embedding cosine at or above which two rows are duplicates")
    p.add_argument("--hash-bits", default="8", help="perceptual-hash bits within which two images are candidate "
                   "copies (default 8)")  # fmt: skip
    p.add_argument("--pixel-correlation", default="0.99", help="correlation of the low frequencies of their pixels "
                   "at or above which candidate copies are duplicates (default 0.99)")  # fmt: skip
    p.add_argument("--map", default="umap", choices=["umap", "pca"], help="the 2-D map's method (default umap)")
    p.add_argument("--max-points", default="5000", help="points on the map (flagged rows always; default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from headstart.workflow.audit import AuditOptions, audit_path

    try:
        cosine, bits, correlation = float(args.cosine), int(args.hash_bits), float(args.pixel_correlation)
    except ValueError as err:
        raise CliError(f"--cosine and --pixel-correlation take numbers like 0.995 and --hash-bits an integer like 8 "
                       f"({err})") from err  # fmt: skip
    options = AuditOptions(
        head=args.head, params=head_params(args.head, args.set), cosine=cosine, hash_bits=bits,
        pixel_correlation=correlation,
        map_method=args.map, max_points=positive(args.max_points, "--max-points"), seed=args.seed,
    )  # fmt: skip
    summary = audit_path(embedding_table(args.table, "audit"), args.output, prepared=args.prepared, options=options)
    print(json.dumps({k: v for k, v in summary.items() if k != "thresholds"}, indent=2, sort_keys=True))
    print(f"open {args.output}/index.html")
    return 0
