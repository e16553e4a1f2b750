"""Stage `versions`: headstart-versions.json and, with ``--sources DIR``, ``DIR/<dataset>.json`` for every dataset
of params.yaml (see :mod:`headstart.workflow.sources`). DVC runs it on every `dvc repro`; it writes the same bytes
when nothing changed. No torch, no pandas."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main
from headstart.workflow.sources import pipeline_versions, write_json_if_changed, write_sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.versions", description=__doc__)
    parser.add_argument("output", help="the JSON file to write (headstart-versions.json)")
    parser.add_argument("--sources", metavar="DIR", help="also write DIR/<dataset>.json for each dataset")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    write_json_if_changed(args.output, pipeline_versions())
    if args.sources is not None:
        write_sources(args.sources, args.params)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
