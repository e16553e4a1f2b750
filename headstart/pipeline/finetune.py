"""Stage `finetune`: start from the logreg probe on the default layer, unfreeze the last blocks, train a little.

Writes finetuned/<dataset>/<backbone>/model.pt (+ .sha256), results/, metrics/ and timings/finetune/<dataset>/
<backbone>.json (see headstart.workflow.finetune).
"""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.workflow.config import load_config
from headstart.workflow.finetune import finetune_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.finetune", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    print(finetune_stage(load_config(args.params), args.dataset, args.backbone, progress=tqdm_progress))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
