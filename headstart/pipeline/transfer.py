"""Stage `transfer`: heads trained on a source domain, a target domain, both, and source-then-adapted,
each scored on both test splits. Writes results/transfer/<name>.json, metrics/transfer/<name>.json and
reports/transfer/<name>.md (see headstart.workflow.transfer)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging
from headstart.workflow.config import load_config
from headstart.workflow.transfer import transfer_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.transfer", description=__doc__)
    parser.add_argument("name", help="an entry of params.yaml's transfer section")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    print(transfer_stage(load_config(args.params), args.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
