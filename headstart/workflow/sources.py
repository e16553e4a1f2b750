"""What the pipeline is made from, written by the `versions` stage (the one stage DVC runs on every `dvc repro`).

- :func:`pipeline_versions`: headstart's version and those of the libraries that compute the results
  (``headstart-versions.json``): in a project made by `headstart init`, every stage depends on this file instead
  of on headstart's source files, so the pipeline reruns when headstart (or torch, scikit-learn, ...) changes.
- :func:`write_sources`: ``<dataset>.json`` per dataset, a digest of its files' names and contents
  (:mod:`headstart.data.contents`), which that dataset's `prepare` stage depends on.

Both are written with the same bytes when nothing changed, so that nothing downstream reruns. Cheap on purpose:
package metadata, and ``stat`` calls on the datasets' files (a file is read again only when its size, mtime or
inode changed). params.yaml is read for its ``datasets`` only, and not checked: the `settings` stage checks it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from headstart import __version__
from headstart._files import write_json
from headstart._versions import installed_versions
from headstart.data.contents import source_contents

__all__ = ["LIBRARIES", "dataset_sources", "pipeline_versions", "write_json_if_changed", "write_sources"]

log = logging.getLogger(__name__)

LIBRARIES = ("torch", "torchvision", "pillow", "numpy", "scikit-learn", "faiss-cpu", "pyarrow", "pandas")


def pipeline_versions() -> dict[str, str]:
    """headstart's version and the installed versions of :data:`LIBRARIES`."""
    return {"headstart": __version__, **installed_versions(LIBRARIES)}


def write_json_if_changed(path: str | Path, payload: Any) -> bool:
    """``write_json``, except that a file with the same content is left alone (its stat too, so DVC does not even
    re-hash it). Returns whether it wrote."""
    try:
        if json.loads(Path(path).read_text()) == payload:
            return False
    except (OSError, ValueError):
        pass
    write_json(path, payload)
    return True


def dataset_sources(params: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    """``{dataset: its entry}`` from params.yaml's ``datasets``, the well-formed entries only (a mapping with a
    ``source``): the `settings` stage reports what is wrong with the others, and stops the pipeline there."""
    try:
        raw = yaml.safe_load(Path(params).read_text())
    except (OSError, yaml.YAMLError) as err:
        log.warning("%s cannot be read (%s); no dataset's files listed", params, err)
        return {}
    datasets = raw.get("datasets") if isinstance(raw, Mapping) else None
    if not isinstance(datasets, Mapping):
        return {}
    return {
        str(name): dict(body)
        for name, body in datasets.items()
        if isinstance(body, Mapping) and isinstance(body.get("source"), str)
    }


def write_sources(directory: str | Path, params: str | Path = "params.yaml") -> list[Path]:
    """Write ``<dataset>.json`` (:func:`~headstart.data.contents.source_contents`) for each dataset in ``params``
    into ``directory`` and remove the files of datasets no longer there; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in dataset_sources(params).items():
        path = directory / f"{name}.json"
        root, text_column = body.get("root"), body.get("text_column")
        contents = source_contents(
            name, body["source"], root if isinstance(root, str) else None,
            text_column if isinstance(text_column, str) else None,
        )  # fmt: skip
        write_json_if_changed(path, contents)
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written
