"""Embedding tables as sharded datasets, and reading tables a row group at a time (part of :mod:`tables`).

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
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


_tables: Any  # headstart.data.tables, bound at the end of this module (it re-exports this module's names)
SHARD_BYTES = 256 * 2**20
_ENGINE_KEY = b"headstart.engine"
_SHARD = "part-{:05d}.parquet"


def shard_rows(dim: int, target_bytes: int = SHARD_BYTES) -> int:
    """Rows per shard so that a shard of ``dim``-wide float32 vectors is about ``target_bytes`` (before
    compression, which gains little on floats), in whole row groups.

    >>> shard_rows(384), shard_rows(1280)
    (163840, 49152)
    """
    per_row = 4 * dim + 64  # the vector, plus id, label, split and path
    groups = max(1, target_bytes // per_row // _tables.ROW_GROUP_ROWS)
    return int(groups * _tables.ROW_GROUP_ROWS)


def shard_files(path: str | Path) -> list[Path]:
    """The Parquet files of a table: ``[path]`` for a file, the ``part-*.parquet`` shards of a directory."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("part-*.parquet"))
    if not files:
        raise _tables.TableError(f"{path} is a directory without part-*.parquet shards; re-create the table")
    expected = [_SHARD.format(i) for i in range(len(files))]
    if [f.name for f in files] != expected:
        raise _tables.TableError(f"{path}: shards are not numbered part-00000.parquet onwards without gaps; re-create it")
    return files


def _read_shards_meta(path: Path, kind: str) -> tuple[pa.Schema, dict[str, Any]]:
    """Metadata of a sharded table; every shard must carry the same schema and provenance."""
    files = shard_files(path)
    schema, payload = _tables._read_meta(files[0], kind)
    for other in files[1:]:
        other_schema, _ = _tables._read_meta(other, kind)
        if not other_schema.equals(schema, check_metadata=True):
            raise _tables.TableError(
                f"{other} does not have the schema and provenance of {files[0]}; the shards come from "
                "different runs. Re-create the table"
            )
    return schema, payload


def row_groups(path: str | Path) -> list[tuple[Path, int]]:
    """Every row group of a table (file, index), shard after shard: the units that heads stream over."""
    return [(f, g) for f in shard_files(path) for g in range(pq.ParquetFile(f).num_row_groups)]


def read_columns(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Only ``columns`` of a table (a file or a directory of shards), in its row order: no embeddings read."""
    parts = [_tables._read_table(f, columns=list(columns)) for f in shard_files(path)]
    return (parts[0] if len(parts) == 1 else pa.concat_tables(parts)).to_pandas()


def read_row_group(
    file: Path, group: int, dim: int, splits: Sequence[str] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row group of an embedding table as ``(frame, X)``; ``splits`` keeps only those splits."""
    table = pq.ParquetFile(file).read_row_group(group)
    if splits is not None:
        keep = np.isin(table.column("split").to_numpy(zero_copy_only=False), list(splits))
        table = table.filter(pa.array(keep))
    column = table.column("embedding").combine_chunks()
    X = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table.drop_columns(["embedding"]).to_pandas(), np.ascontiguousarray(X, dtype=np.float32)


def iter_embeddings(
    path: str | Path, splits: Sequence[str] | None = None
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield ``(frame, X)`` one row group at a time, shard after shard, in the table's (id) order.

    Memory stays at one row group (4,096 rows) whatever the table's size; ``splits`` keeps only those splits.
    """
    _, provenance = _tables._read_meta(Path(path), "embeddings")
    for file, group in row_groups(path):
        frame, X = read_row_group(file, group, int(provenance["dim"]), splits)
        if len(frame):
            yield frame, X


def read_prepared_images(path: str | Path, ids: Sequence[str]) -> dict[str, bytes | None]:
    """The ``image`` bytes of ``ids`` in a prepared table (sorted by id), reading only the row groups whose id
    range holds them. ``path`` may be a URI of a pyarrow filesystem (``s3://...``, ``gs://...``)."""
    if not ids:
        return {}
    filesystem, where = _filesystem(path)
    lo, hi = min(ids), max(ids)
    table = pq.read_table(
        where, columns=["id", "image"], filters=[("id", ">=", lo), ("id", "<=", hi)], filesystem=filesystem
    )
    found = dict(zip(table.column("id").to_pylist(), table.column("image").to_pylist(), strict=True))
    return {i: found.get(i) for i in ids}


def _filesystem(path: str | Path) -> tuple[Any, str]:
    text = str(path)
    if "://" in text:
        from pyarrow import fs

        return fs.FileSystem.from_uri(text)
    return None, text


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
            raise _tables.TableError(f"rows_per_shard must be positive, got {rows_per_shard}")
        self.engine = dict(engine) if engine else None
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.shards")
        self._shards: list[Any] = []
        self._done = False

    def __enter__(self) -> ShardedEmbeddingWriter:
        self._tmp.mkdir(parents=True)
        return self

    def _open_shard(self) -> Any:
        from headstart.data.table_writer import EmbeddingWriter

        writer = EmbeddingWriter(self._tmp / _SHARD.format(len(self._shards)), self.dim, self.provenance, **self.columns)
        if self.engine is not None:
            info = json.dumps(self.engine, sort_keys=True, separators=(",", ":")).encode()
            writer.schema = writer.schema.with_metadata({**writer.schema.metadata, _ENGINE_KEY: info})
        self._shards.append(writer.__enter__())
        return writer

    @contextlib.contextmanager
    def _names_the_table(self) -> Iterator[None]:
        """A full disk while writing a shard in the private folder is reported under the table's own name."""
        from headstart._files import DiskFullError, disk_full

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
            shard.write(ids[start:end], labels[start:end], splits[start:end], paths[start:end], vectors[start:end], part)
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
                os.replace(self._tmp / _SHARD.format(0), self.path)
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


from headstart.data import tables as _tables  # noqa: E402 - last, as tables imports this module at its end
