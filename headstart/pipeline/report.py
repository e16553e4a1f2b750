"""Stage `report`: every result settings/report.json names -> reports/heads.md, figures and plot data; prints the
table (see headstart.workflow.report)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging
from headstart.workflow import layout
from headstart.workflow.report import report_stage
from headstart.workflow.settings import ReportSettings, read_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.report", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    setup_logging()
    text = report_stage(read_settings(ReportSettings, layout.report_settings()))
    if not args.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
