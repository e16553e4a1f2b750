"""Stage `fit`: every head of params.yaml (or the HEADs given) on every layer of one dataset x backbone; models,
metrics, results, confusion plots, timings. A head whose tables, settings and code are those of its last fit is
kept, not fitted again (see headstart.workflow.fit)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.workflow.config import load_config
from headstart.workflow.fit import fit_heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.fit", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("head", nargs="*", help="only these heads (default: every head of params.yaml)")
    parser.add_argument("--finetuned", action="store_true", help="the fine-tuned backbone's embeddings")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    heads = args.head or None
    lines = fit_heads(cfg, args.dataset, args.backbone, heads, finetuned=args.finetuned, progress=tqdm_progress)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
