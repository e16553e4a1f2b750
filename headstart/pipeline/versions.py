"""Stage `versions`: write the installed headstart's version and those of the libraries that compute the results.

Every other stage depends on this file instead of on headstart's source files, so a pipeline made by
`headstart init` reruns when headstart (or torch, scikit-learn, ...) is upgraded, and only then. It runs on every
`dvc repro` (it is cheap: package metadata only, no imports) and writes the same bytes when nothing changed.
"""

from __future__ import annotations

import argparse
from importlib import metadata

from headstart import __version__
from headstart._files import write_json
from headstart._terminal import run_main

__all__ = ["installed_versions", "main"]

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
    args = parser.parse_args(argv)
    write_json(args.output, installed_versions())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
