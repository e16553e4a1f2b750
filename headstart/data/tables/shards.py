"""Embedding tables as sharded datasets: :class:`ShardedEmbeddingWriter`.

A large table is a directory named like a file, ``<layer>.parquet/``, holding ``part-00000.parquet``,
``part-00001.parquet``, ... : fixed rows per shard, in id order, each shard a complete headstart table with the
same schema and provenance. A table that fits in one shard stays one file, byte for byte what
:class:`EmbeddingWriter` writes. Every headstart reader takes both forms; so do the usual tools, in one call::

    pandas.read_parquet("features.13.parquet")                      # a file or a directory
    pyarrow.dataset.dataset("features.13.parquet", format="parquet").to_table()
    polars.read_parquet("features.13.parquet/*.parquet")            # or polars.scan_parquet(...)
    duckdb.sql("SELECT * FROM 'features.13.parquet/*.parquet'")

The directory is written beside its target under a temporary name and renamed into place at the end, so a
failed run never leaves a partial table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart._files import DiskFullError, disk_full
from headstart.data.tables.schema import ENGINE_KEY, SHARD_NAME, TableError, canonical_json, shard_rows
from headstart.data.tables.write import EmbeddingWriter

__all__ = ["ShardedEmbeddingWriter"]


class ShardedEmbeddingWriter:
    """An :class:`EmbeddingWriter` that starts a new shard every ``rows_per_shard`` rows.

    With one shard at the end, the table is one file at ``path`` (the same bytes as :class:`EmbeddingWriter`
    writes); with more, ``path`` is a directory of ``part-NNNNN.parquet``. ``engine`` is information about the
    run (engine, cluster size) kept in the metadata beside the provenance, outside the fingerprint.

    >>> with ShardedEmbeddingWriter("out.parquet", 384, {"node": "x"}, rows_per_shard=163840) as w:  # doctest: +SKIP
    ...     w.write(ids, labels, splits, paths, vectors)
    """

    def __init__(
        self,
        path: str | Path,
        dim: int,
        provenance: Mapping[str, Any],
        rows_per_shard: int | None = None,
        engine: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> None:
        self.path = Path(path)
        self.columns = columns  # labelled=, extra=: as EmbeddingWriter takes them
        self.dim = dim
        self.provenance = dict(provenance)
        self.rows_per_shard = int(rows_per_shard or shard_rows(dim))
        if self.rows_per_shard < 1:
            raise TableError(f"rows_per_shard must be positive, got {rows_per_shard}")
        self.engine = dict(engine) if engine else None
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.shards")
        self._shards: list[EmbeddingWriter] = []
        self._done = False

    def __enter__(self) -> ShardedEmbeddingWriter:
        self._tmp.mkdir(parents=True)
        return self

    def _open_shard(self) -> EmbeddingWriter:
        where = self._tmp / SHARD_NAME.format(len(self._shards))
        writer = EmbeddingWriter(where, self.dim, self.provenance, **self.columns)
        if self.engine is not None:
            info = canonical_json(self.engine)
            writer.schema = writer.schema.with_metadata({**writer.schema.metadata, ENGINE_KEY: info})
        self._shards.append(writer.__enter__())
        return writer

    @contextlib.contextmanager
    def _names_the_table(self) -> Iterator[None]:
        """A full disk while writing a shard in the private folder is reported under the table's own name."""
        try:
            yield
        except OSError as err:
            cause = err.__cause__ if isinstance(err, DiskFullError) and isinstance(err.__cause__, OSError) else err
            full = disk_full(cause, self.path)
            if full is not None:
                raise full from err
            raise

    def write(
        self,
        ids: Sequence[str],
        labels: Sequence[str],
        splits: Sequence[str],
        paths: Sequence[str | None],
        vectors: np.ndarray,
        extra: Mapping[str, Sequence[str | None]] | None = None,
    ) -> None:
        """Append rows (in id order), splitting them across shards at every ``rows_per_shard`` rows."""
        with self._names_the_table():
            self._write(ids, labels, splits, paths, vectors, extra)

    def _write(self, ids: Any, labels: Any, splits: Any, paths: Any, vectors: np.ndarray, extra: Any) -> None:
        start = 0
        while start < len(ids):
            if not self._shards or self._shards[-1].rows + self._shards[-1]._pending_rows >= self.rows_per_shard:
                if self._shards:
                    self._shards[-1].__exit__(None, None, None)  # complete: renamed inside the private folder
                self._open_shard()
            shard = self._shards[-1]
            room = self.rows_per_shard - shard.rows - shard._pending_rows
            end = min(len(ids), start + room)
            part = {k: list(v)[start:end] for k, v in extra.items()} if extra else None
            rows = slice(start, end)
            shard.write(ids[rows], labels[rows], splits[rows], paths[rows], vectors[rows], part)
            start = end
        self.rows += len(ids)

    def finish(self) -> None:
        """Complete the last shard; after this only moving the table into place is left (on leaving the block)."""
        with self._names_the_table():
            if not self._shards:
                self._open_shard()  # an empty table is one empty file
            if not self._done:
                self._done = True
                self._shards[-1].__exit__(None, None, None)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.finish()
                with self._names_the_table():
                    self._commit()
            elif self._shards and not self._done:
                self._shards[-1].__exit__(exc_type, exc, tb)  # discards the shard being written
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _commit(self) -> None:
        """Put the new table at ``path``: one file, or the directory of shards; then drop the old form."""
        old = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.old")
        if self.path.is_dir():
            os.replace(self.path, old)  # a directory cannot be replaced in one rename; the old one waits aside
        try:
            if len(self._shards) == 1:
                os.replace(self._tmp / SHARD_NAME.format(0), self.path)
            else:
                if self.path.exists():
                    os.replace(self.path, old)
                os.replace(self._tmp, self.path)
        except BaseException:
            if old.exists() and not self.path.exists():
                os.replace(old, self.path)  # put the earlier good table back
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
