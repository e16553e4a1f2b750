"""Stage `prepare`: list, hash, shift and split one dataset into data/prepared/<dataset>.parquet."""

from __future__ import annotations

import argparse
import logging

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.prepare import prepare_dataset
from headstart.data.tables import write_prepared
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

log = logging.getLogger("headstart.pipeline.prepare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.prepare", description=__doc__)
    parser.add_argument("dataset", help="a dataset name from params.yaml")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds = cfg.dataset(args.dataset)
    frame = prepare_dataset(
        ds.source,
        name=ds.name,
        val=ds.split.val,
        test=ds.split.test,
        seed=cfg.seed,
        shift=ds.shift,
        limit=ds.limit,
        root=ds.root,
        imbalance=ds.imbalance,
        progress=tqdm_progress,
    )
    out = layout.prepared(ds.name)
    write_prepared(out, frame, frame.attrs["headstart"])
    meta = frame.attrs["headstart"]
    log.info(
        "%s: %d images, %d classes, splits %s -> %s", ds.name, meta["images"], len(meta["classes"]), meta["splits"], out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
