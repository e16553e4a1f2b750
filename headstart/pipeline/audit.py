"""Stage `audit`: near-duplicates and train/test leakage, likely label errors, outliers and a map of one dataset x
backbone, at the layer and head with the best val score -> audit/<dataset>/<backbone>/ (index.html and the
finding tables) and metrics/audit/<dataset>/<backbone>.json (see headstart.workflow.audit)."""

from __future__ import annotations

import argparse
import json

from headstart._terminal import run_main, setup_logging
from headstart.workflow.audit import audit_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.audit", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    args = parser.parse_args(argv)
    setup_logging()
    summary = audit_stage(args.dataset, args.backbone)
    print(json.dumps({k: v for k, v in summary.items() if k != "thresholds"}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
