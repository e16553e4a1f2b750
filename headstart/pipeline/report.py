"""Stage `report`: every head's results -> reports/heads.md, figures and plot data; prints the table
(see headstart.workflow.report)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging
from headstart.workflow.config import load_config
from headstart.workflow.report import report_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.report", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    setup_logging()
    text = report_stage(load_config(args.params))
    if not args.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
