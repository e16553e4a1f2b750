"""Stage `settings`: check params.yaml whole and write the settings file each other stage reads
(:mod:`headstart.workflow.settings`)."""

from __future__ import annotations

import argparse

from headstart._files import write_json
from headstart._terminal import run_main
from headstart.workflow import layout
from headstart.workflow.config import load_config
from headstart.workflow.settings import head_settings, resolved_settings, transfer_settings, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.settings", description=__doc__)
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("backbone", nargs="?")
    parser.add_argument("--transfer", metavar="NAME", help="write the settings of transfer.NAME instead")
    parser.add_argument("--heads", action="store_true", help="write the settings of the heads instead")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    one = args.transfer is not None or args.heads or args.dataset is not None
    if one and (args.transfer is None and not args.heads) == (args.dataset is None or args.backbone is None):
        parser.error("give DATASET BACKBONE, --transfer NAME, --heads, or nothing (every settings file)")
    cfg = load_config(args.params)
    if not one:
        write_all(cfg)
    elif args.heads:
        write_json(layout.heads_settings(), {h: head_settings(cfg, h) for h in cfg.heads})
    elif args.transfer is not None:
        write_json(layout.transfer_settings(args.transfer), transfer_settings(cfg, args.transfer))
    else:
        resolved = resolved_settings(cfg, args.dataset, args.backbone)
        write_json(layout.settings_file(args.dataset, args.backbone), resolved)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
