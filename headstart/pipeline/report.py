"""Stage `report`: every head's results -> reports/heads.md, figures and plot data; prints the table."""

from __future__ import annotations

import argparse
import json
import logging

from headstart._terminal import run_main, setup_logging
from headstart.heads.report import render_report, rows_from_results
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

log = logging.getLogger("headstart.pipeline.report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.report", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    results, missing = [], []
    for ds in cfg.datasets:
        for bb in cfg.backbones:
            for head in cfg.heads:
                path = layout.results(ds, bb, head)
                if path.exists():
                    results.append(json.loads(path.read_text()))
                else:
                    missing.append(str(path))
    for ds in cfg.finetune.datasets:  # the fine-tuned network as one more backbone
        for bb in cfg.finetune.backbones:
            for head in cfg.heads:
                path = layout.results(ds, layout.finetuned_name(bb), head)
                if path.exists():
                    results.append(json.loads(path.read_text()))
    if missing:
        raise FileNotFoundError(
            f"missing results {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
            "run `dvc repro` (the fit stages write them)"
        )
    finetune = []
    for ds in cfg.finetune.datasets:
        for bb in cfg.finetune.backbones:
            path = layout.finetune_results(ds, bb)
            if path.exists():
                finetune.append(json.loads(path.read_text()))
    transfer = []
    for name in cfg.transfer:
        path = layout.transfer_results(name)
        if path.exists():
            transfer.append(json.loads(path.read_text()))
    text = render_report(
        rows_from_results(results),
        layout.REPORT_DIR,
        finetune=finetune,
        transfer=transfer,
        protocol={"seeds": cfg.evaluate.seeds},
    )
    if not args.quiet:
        print(text)
    log.info("wrote %s", layout.REPORT)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
