"""Stage `transfer`: heads trained on a source domain, a target domain, both, and source-then-adapted,
each scored on both test splits, as settings/transfer-<name>.json says. Writes results/transfer/<name>.json,
metrics/transfer/<name>.json and reports/transfer/<name>.md (see headstart.workflow.transfer)."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging
from headstart.workflow import layout
from headstart.workflow.settings import TransferSettings, read_settings
from headstart.workflow.transfer import transfer_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.transfer", description=__doc__)
    parser.add_argument("name", help="an entry of params.yaml's transfer section")
    args = parser.parse_args(argv)
    setup_logging()
    print(transfer_stage(read_settings(TransferSettings, layout.transfer_settings(args.name))))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
