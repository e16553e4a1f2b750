"""Stage `fit`: one head (settings/heads/<head>.json) on every layer of one dataset x backbone; models, metrics,
results, confusion plots, timings (see headstart.workflow.fit)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.workflow import layout
from headstart.workflow.fit import fit_stage
from headstart.workflow.settings import FitSettings, read_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.fit", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("head")
    parser.add_argument("--finetuned", action="store_true", help="the fine-tuned backbone's embeddings")
    args = parser.parse_args(argv)
    setup_logging()
    settings = read_settings(FitSettings, layout.head_settings(args.head))
    lines = fit_stage(settings, args.dataset, args.backbone, finetuned=args.finetuned, progress=tqdm_progress)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
