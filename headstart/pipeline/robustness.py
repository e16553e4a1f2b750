"""Stage `robustness`: every fitted head of one dataset on shifted copies of its test split (noise, blur,
contrast, rotate, JPEG re-compression, ...), without refitting -> results/ and metrics/robustness/<dataset>.json
(see headstart.workflow.robustness)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.workflow.config import load_config
from headstart.workflow.robustness import robustness_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.robustness", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    lines = robustness_stage(load_config(args.params), args.dataset, progress=tqdm_progress)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
