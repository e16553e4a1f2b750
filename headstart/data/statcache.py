"""A stat cache of content ids, like DVC's own state: unchanged files are not read again.

An entry maps a file's absolute path to its content id, valid only while the file's ``(size, mtime_ns,
inode)`` stay the same. A copied or moved repository has other paths and inodes, so it never trusts an entry
made for the original; an edited file has another mtime or size. Files modified in the last two seconds are
hashed but not remembered (their mtime may not yet tell a second edit from the first: git's "racy" case).

The cache is a SQLite file (``.headstart/stat.sqlite`` by default): many readers, one writer at a time, and a
damaged file is only a cache, so any error falls back to hashing (with a warning) and never stops a run.

Example
-------
>>> ids = StatCache(".headstart/stat.sqlite").ids(["a.png", "b.png"], hash_file=file_id)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["DEFAULT_STAT_CACHE", "StatCache", "file_signature"]

log = logging.getLogger(__name__)

DEFAULT_STAT_CACHE = ".headstart/stat.sqlite"
RACY_SECONDS = 2.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ids (path TEXT PRIMARY KEY, size INT, mtime_ns INT, inode INT, id TEXT) WITHOUT ROWID"
)


def file_signature(path: str) -> tuple[int, int, int]:
    """``(size, mtime_ns, inode)`` of ``path`` (following links)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


class StatCache:
    """Content ids of files, re-read only when a file's size, mtime or inode changed.

    ``hashed`` counts the files actually read by the last :meth:`ids` call (0 on a no-op rerun).
    """

    def __init__(self, path: str | Path | None = DEFAULT_STAT_CACHE) -> None:
        self.path = None if path is None else Path(path)
        self.hashed = 0

    def ids(
        self, paths: Sequence[str], hash_file: Callable[[str], str], on_hashed: Callable[[int], None] | None = None
    ) -> list[str]:
        """The content id of every file in ``paths`` (same order); hashes only the new or changed ones."""
        absolute = [os.path.abspath(p) for p in paths]
        signatures = [file_signature(p) for p in absolute]
        known = self._load(absolute)
        out: list[str | None] = []
        todo: list[int] = []
        for i, (path, sig) in enumerate(zip(absolute, signatures, strict=True)):
            entry = known.get(path)
            if entry is not None and entry[:3] == sig:
                out.append(entry[3])
            else:
                out.append(None)
                todo.append(i)
        if on_hashed is not None and len(out) > len(todo):
            on_hashed(len(out) - len(todo))
        self.hashed = len(todo)
        if todo:
            with ThreadPoolExecutor(max_workers=8) as pool:
                for i, item_id in zip(todo, pool.map(hash_file, [paths[i] for i in todo]), strict=True):
                    out[i] = item_id
                    if on_hashed is not None:
                        on_hashed(1)
            racy = time.time_ns() - int(RACY_SECONDS * 1e9)
            fresh = [
                (absolute[i], *signatures[i], out[i])
                for i in todo
                if signatures[i][1] < racy and file_signature(absolute[i]) == signatures[i]
            ]
            self._store(fresh)
        return out  # type: ignore[return-value]

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        db.execute(_SCHEMA)
        return db

    def _load(self, paths: Iterable[str]) -> dict[str, tuple[int, int, int, str]]:
        if self.path is None or not self.path.exists():
            return {}
        wanted = set(paths)
        try:
            with contextlib.closing(self._connect()) as db:
                rows = db.execute("SELECT path, size, mtime_ns, inode, id FROM ids").fetchall()
        except sqlite3.Error as err:
            log.warning("stat cache %s is unreadable (%s); hashing every file", self.path, err)
            return {}
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows if r[0] in wanted}

    def _store(self, rows: list[tuple[str, int, int, int, str | None]]) -> None:
        if self.path is None or not rows:
            return
        try:
            with contextlib.closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO ids VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as err:
            log.warning("stat cache %s cannot be updated (%s); the next run hashes these files again", self.path, err)
