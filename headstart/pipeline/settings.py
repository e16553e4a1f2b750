"""Stage `settings`: check params.yaml whole and write the settings file each other stage reads
(:mod:`headstart.workflow.settings`); the only stage that reads params.yaml, and the only one that lists params."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main
from headstart.workflow.config import load_config
from headstart.workflow.settings import write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.settings", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    write_all(load_config(args.params))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
