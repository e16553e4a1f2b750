"""What a dataset is made of, as one small file DVC can watch: ``headstart-sources/<dataset>.json``.

A dataset's files live outside DVC (a built-in's data files, an image folder, a manifest and the images it
lists). The pipeline's `versions` stage, the one stage DVC runs on every `dvc repro`, writes for each dataset a
digest of its files' names (relative to the source) and contents; `prepare` depends on that file, so it runs when
a file was added, removed, renamed or edited, and not otherwise. The same files give the same bytes on any clone.

It reads nothing it has read before:

- when no file's ``(size, mtime_ns, inode)`` changed since the last run (a digest of the stats, kept in
  ``.headstart/sources/<dataset>.json``), the digest is reused and only ``stat`` calls were made;
- otherwise the contents come from the stat cache (:mod:`headstart.data.statcache`, shared with `prepare`), so
  only new or edited files are read.

A source that is not there (a folder not yet made, a built-in whose files are not installed) gets
``"content": null``; `prepare` then fails with its own message on what to do.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from headstart._files import atomic_path
from headstart.data.hashing import file_id
from headstart.data.statcache import DEFAULT_STAT_CACHE, StatCache

__all__ = ["MEMO_DIR", "SourceUnknown", "source_contents", "source_files"]

MEMO_DIR = ".headstart/sources"
RACY_SECONDS = 2.0


class SourceUnknown(Exception):
    """The source's files cannot be listed (it is missing, or its kind is unknown)."""


def source_files(source: str, root: str | None = None, text_column: str | None = None) -> Iterator[str]:
    """Every file (and, for a folder, every sub-folder) the source's rows come from, in a fixed order.

    Raises :class:`SourceUnknown` when the source is not there.
    """
    if text_column is not None:  # a text table holds its texts: that one file is the whole source
        if not os.path.isfile(source):
            raise SourceUnknown(source)
        yield source
        return
    if source == "digits" and root is None:
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise SourceUnknown(source)
        yield os.path.join(next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz")
        return
    if source in ("mnist", "fashion-mnist"):  # IDX files in a folder
        # imported only for these sources: the locator's module loads numpy, pandas and PIL, which the always-run
        # `versions` stage does not need for any other source
        from headstart.data.builtin import BUILTIN_DATASETS

        where = BUILTIN_DATASETS[source].locate(root)
        if where is None:
            raise SourceUnknown(source)
        yield from sorted(str(p) for p in Path(where).iterdir() if p.is_file())
        return
    path = Path(source)
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            yield dirpath  # a renamed or added folder changes a label even when no image changes
            yield from (os.path.join(dirpath, name) for name in sorted(filenames))
        return
    if not path.is_file():
        raise SourceUnknown(source)
    yield str(path)
    try:
        names = _listed(path)
    except Exception:  # an unreadable manifest: its own bytes are the source, and `prepare` says what is wrong
        return
    for name in names:  # a manifest's paths are relative to the manifest
        yield name if os.path.isabs(name) else os.path.join(path.parent, name)


def _listed(manifest: Path) -> list[str]:
    """The paths a manifest lists (none for a file that is not one)."""
    if manifest.suffix.lower() == ".csv":
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip().lower() for h in next(reader, [])]
            if "path" not in header:
                return []
            column = header.index("path")
            return [row[column] for row in reader if column < len(row) and row[column].strip()]
    if manifest.suffix.lower() in (".parquet", ".pq"):
        from headstart.data.tables import read_manifest_paths  # loads pandas and pyarrow: only for such a manifest

        return read_manifest_paths(manifest)
    return []


def source_contents(
    name: str,
    source: str,
    root: str | None = None,
    text_column: str | None = None,
    *,
    stat_cache: str | Path | None = DEFAULT_STAT_CACHE,
    memo_dir: str | Path | None = MEMO_DIR,
) -> dict:
    """``{"dataset", "source", "files", "content"}``: the digest of the source's file names and contents."""
    head = {"dataset": name, "source": source}
    try:
        paths = list(source_files(source, root, text_column))
        stats = [os.stat(p) for p in paths]
    except (SourceUnknown, FileNotFoundError):
        return {**head, "files": 0, "content": None}
    racy = time.time_ns() - int(RACY_SECONDS * 1e9)
    signature = hashlib.blake2b(f"{source}\0{root}\0{text_column}".encode(), digest_size=16)
    for path, st in zip(paths, stats, strict=True):
        signature.update(f"\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode())
    trusted = all(st.st_mtime_ns < racy for st in stats)
    memo = Path(memo_dir) / f"{name}.json" if memo_dir is not None else None
    if memo is not None and trusted:
        try:
            saved = json.loads(memo.read_text())
            if saved["signature"] == signature.hexdigest():
                return {**head, **saved["contents"]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    files = [p for p, st in zip(paths, stats, strict=True) if not stat.S_ISDIR(st.st_mode)]
    ids = StatCache(stat_cache).ids(files, hash_file=file_id)
    base = _base(source, files)
    digest = hashlib.blake2b(digest_size=16)
    for i, (path, item_id) in enumerate(zip(files, ids, strict=True)):
        digest.update(f"{_relative(path, base, i)}\0{item_id}\n".encode())
    contents = {"files": len(files), "content": digest.hexdigest()}
    if memo is not None and trusted:
        memo.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"signature": signature.hexdigest(), "contents": contents}))
    return {**head, **contents}


def _base(source: str, files: list[str]) -> str:
    """The folder names are relative to: the source folder, a manifest's folder, a built-in's data folder."""
    if os.path.isdir(source):
        return source
    if os.path.isfile(source):
        return os.path.dirname(source) or "."
    return os.path.dirname(files[0]) if files else "."


def _relative(path: str, base: str, position: int) -> str:
    """The name a file is known by on any clone: relative to ``base``, or (a manifest's file elsewhere, whose name
    the manifest's own bytes already fix) its position."""
    relative = os.path.relpath(path, base)
    return f"#{position}" if relative.startswith("..") else Path(relative).as_posix()
