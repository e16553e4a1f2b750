"""Stage `prepare`: list, hash, shift and split one dataset into data/prepared/<dataset>.parquet.

DVC runs it when the dataset's files (headstart-sources/datasets/<dataset>.json, from the `versions` stage) or
its settings (settings/prepare-<dataset>.json) changed. The stat cache makes a rerun read only new or edited files.
"""

from __future__ import annotations

import argparse
import logging

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.data.prepare import prepare_dataset
from headstart.data.statcache import DEFAULT_STAT_CACHE
from headstart.data.tables import write_prepared
from headstart.workflow import layout
from headstart.workflow.settings import PrepareSettings, read_settings

log = logging.getLogger("headstart.pipeline.prepare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.prepare", description=__doc__)
    parser.add_argument("dataset", help="a dataset name from params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    settings = read_settings(PrepareSettings, layout.prepare_settings(args.dataset))
    ds, out = settings.dataset, layout.prepared(args.dataset)
    frame = prepare_dataset(
        ds.source,
        name=ds.name,
        val=ds.split.val,
        test=ds.split.test,
        seed=settings.seed,
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
    meta = frame.attrs["headstart"]
    log.info(
        "%s: %d images, %d classes, splits %s -> %s", ds.name, meta["images"], len(meta["classes"]), meta["splits"], out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
