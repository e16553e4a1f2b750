"""Stage `versions`: what the pipeline is made from, written on every `dvc repro` with the same bytes when unchanged.

- ``headstart-versions.json``: the installed headstart's version and those of the libraries that compute the
  results. Every other stage depends on this file instead of on headstart's source files, so a pipeline made by
  `headstart init` reruns when headstart (or torch, scikit-learn, ...) is upgraded, and only then.
- with ``--sources DIR``: ``DIR/<dataset>.json`` for every dataset in params.yaml, a digest of its files' names and
  contents (:mod:`headstart.data.contents`), which `prepare` depends on: DVC runs this one stage every time,
  because datasets live outside DVC, and `prepare` only when a dataset's files changed.

- with ``--code MAP --code-out DIR`` (this repository's own pipeline): ``DIR/<module>.json``, the digests of the
  headstart source files each stage module imports, which that module's stages depend on.

It is the only stage DVC always runs, and it is cheap: package metadata, and ``stat`` calls on the datasets' files
(a file is read again only when its size, mtime or inode changed). No torch, no pandas.
"""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

from headstart import __version__
from headstart._terminal import run_main
from headstart.workflow.settings import write_json_if_changed

__all__ = ["installed_versions", "main", "write_code", "write_sources"]

LIBRARIES = ("torch", "torchvision", "pillow", "numpy", "scikit-learn", "faiss-cpu", "pyarrow", "pandas")


def installed_versions() -> dict[str, str]:
    """headstart's version and the installed versions of :data:`LIBRARIES` (``missing`` when absent)."""
    out = {"headstart": __version__}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name).split("+")[0]
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.versions", description=__doc__)
    parser.add_argument("output", help="the JSON file to write (headstart-versions.json)")
    parser.add_argument("--sources", metavar="DIR", help="also write DIR/<dataset>.json for each dataset")
    parser.add_argument("--code", metavar="MAP", help="a JSON {module: [source files]} (this repository's pipeline)")
    parser.add_argument("--code-out", metavar="DIR", help="with --code: write DIR/<module>.json, their digests")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if (args.code is None) != (args.code_out is None):
        parser.error("--code and --code-out go together")
    write_json_if_changed(args.output, installed_versions())
    if args.sources is not None:
        write_sources(args.sources, args.params)
    if args.code is not None:
        write_code(args.code, args.code_out)
    return 0


def write_code(modules: str | Path, directory: str | Path) -> list[Path]:
    """Write ``directory/<module>.json``, the sha256 of each source file ``modules`` (a JSON file mapping each stage
    module to the source files it imports) lists for it, and remove the files of modules no longer listed."""
    import hashlib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    written = []
    for module, files in json.loads(Path(modules).read_text()).items():
        for name in files:
            if name not in digests:
                digests[name] = hashlib.sha256(Path(name).read_bytes()).hexdigest()
        path = directory / f"{module}.json"
        payload = {"module": f"headstart.pipeline.{module}", "files": {n: digests[n] for n in files}}
        write_json_if_changed(path, payload)
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


def write_sources(directory: str | Path, params: str | Path = "params.yaml") -> list[Path]:
    """Write ``<dataset>.json`` (:func:`~headstart.data.contents.source_contents`) for each dataset in ``params``
    into ``directory`` and remove the files of datasets no longer there; returns the files written."""
    from headstart.data.contents import source_contents
    from headstart.workflow.config import load_config

    cfg = load_config(params)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for ds in cfg.datasets.values():
        path = directory / f"{ds.name}.json"
        contents = source_contents(ds.name, ds.source, ds.root, ds.text_column)
        write_json_if_changed(path, contents)
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


if __name__ == "__main__":
    raise SystemExit(run_main(main))
