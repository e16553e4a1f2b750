"""Stage `prepare`: list, hash, shift and split one dataset into data/prepared/<dataset>.parquet.

DVC runs this stage on every `dvc repro`. When the dataset's settings, its files (by size, mtime and inode),
the code and the table written last time are all unchanged, the stage stops after a few stats
(:mod:`headstart.data.memo`) and leaves the table alone, so it imports neither pandas nor any image code first.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.memo import PrepareMemo
from headstart.data.statcache import DEFAULT_STAT_CACHE
from headstart.workflow import layout
from headstart.workflow.config import load_config

log = logging.getLogger("headstart.pipeline.prepare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.prepare", description=__doc__)
    parser.add_argument("dataset", help="a dataset name from params.yaml")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    ds = cfg.dataset(args.dataset)
    out = layout.prepared(ds.name)
    memo = PrepareMemo(out, {**dataclasses.asdict(ds), "seed": cfg.seed})
    if memo.fresh():
        log.info("%s: sources, settings and code unchanged since %s was written; left as it is", ds.name, out)
        return 0
    from headstart.data.prepare import prepare_dataset
    from headstart.data.tables import write_prepared

    frame = prepare_dataset(
        ds.source,
        name=ds.name,
        val=ds.split.val,
        test=ds.split.test,
        seed=cfg.seed,
        shift=ds.shift,
        limit=ds.limit,
        root=ds.root,
        text_column=ds.text_column,
        imbalance=dict(ds.imbalance) if ds.imbalance else None,
        stat_cache=DEFAULT_STAT_CACHE,
        labels=ds.labels,
        group_column=ds.group_column,
        progress=tqdm_progress,
    )
    write_prepared(out, frame, frame.attrs["headstart"])
    memo.record()
    meta = frame.attrs["headstart"]
    log.info(
        "%s: %d images, %d classes, splits %s -> %s", ds.name, meta["images"], len(meta["classes"]), meta["splits"], out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
