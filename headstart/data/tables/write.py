"""Writing the tables: :func:`write_prepared` and :func:`write_failures` whole, :class:`EmbeddingWriter` streamed.

Every writer writes to a temporary file beside the target and renames it at the end, so a failed run never leaves
a partial table. Rows are written in fixed-size row groups in the order given (callers sort by ``id``), with no
timestamps, so the same input gives the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from headstart._files import atomic_path, full_disk_names
from headstart.data.tables.schema import ROW_GROUP_ROWS, TableError, embedding_schema, failures_schema, prepared_schema

__all__ = ["EmbeddingWriter", "write_failures", "write_prepared"]


def parquet_writer(where: Path, schema: pa.Schema, float_column: str | None = None) -> pq.ParquetWriter:
    """The one way headstart opens a Parquet file for writing: zstd, page checksums, statistics on the keys."""
    # Page checksums let a reader tell a damaged file from a good one (a flipped byte in a float page would
    # otherwise be read as a different embedding); they are a function of the data, so the bytes stay stable.
    kwargs: dict[str, Any] = {
        "compression": "zstd",
        "write_statistics": ["id", "label", "split"],
        "write_page_checksum": True,
    }
    if float_column is not None:
        # Byte-stream-split groups the bytes of the floats by significance, which zstd then compresses
        # well and, more to the point, decodes fast (see benchmarks/load.py).
        kwargs["use_dictionary"] = ["id", "label", "split", "path"]
        kwargs["use_byte_stream_split"] = [f"{float_column}.list.element"]
    return pq.ParquetWriter(where, schema, **kwargs)


def write_prepared(path: str | Path, frame: pd.DataFrame, metadata: Mapping[str, Any]) -> None:
    """Write a prepared dataset (columns ``id, label, split, path, image`` and any extra ones), atomically."""
    extra = [c for c in frame.columns if c not in ("id", "label", "split", "path", "image")]
    labelled = len(frame) == 0 or not frame["label"].isna().all()
    schema = prepared_schema(metadata, labelled=labelled, extra=extra)
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise TableError(f"prepared table for {path} lacks columns {missing}")
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        with parquet_writer(tmp, schema) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def write_failures(path: str | Path, rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any] | None) -> None:
    """Write the failures table (possibly empty), atomically."""
    schema = failures_schema(provenance, labelled=all(r.get("label") is not None for r in rows))
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_path(path) as tmp:
        with parquet_writer(tmp, schema) as writer:
            writer.write_table(table)


class EmbeddingWriter:
    """Stream rows into an embedding table, in fixed-size row groups, atomically.

    The table appears at ``path`` only when the ``with`` block and every write succeeded; otherwise the previous
    table (if any) is left as it was and the temporary file is removed.

    >>> with EmbeddingWriter("out.parquet", dim=96, provenance={"node": "features.13"}) as w:  # doctest: +SKIP
    ...     w.write(ids, labels, splits, paths, vectors)

    ``labelled=False`` allows null labels (an unlabelled collection); ``extra`` names text columns that every
    :meth:`write` then gives as ``extra={name: values}``.
    """

    def __init__(
        self,
        path: str | Path,
        dim: int,
        provenance: Mapping[str, Any],
        row_group_rows: int = ROW_GROUP_ROWS,
        *,
        labelled: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.schema = embedding_schema(dim, provenance, labelled=labelled, extra=extra)
        self.extra = list(extra)
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._pending: list[tuple[list[list[Any]], np.ndarray]] = []
        self._pending_rows = 0
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> EmbeddingWriter:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._writer = stack.enter_context(parquet_writer(tmp, self.schema, float_column="embedding"))
            self._stack = stack.pop_all()
        return self

    def write(
        self,
        ids: Sequence[str],
        labels: Sequence[str],
        splits: Sequence[str],
        paths: Sequence[str | None],
        vectors: np.ndarray,
        extra: Mapping[str, Sequence[str | None]] | None = None,
    ) -> None:
        """Append rows; ``vectors`` is ``(len(ids), dim)``; ``extra`` holds the extra columns' values."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise TableError(f"{self.path}: expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        columns = [list(ids), list(labels), list(splits), list(paths)]
        columns += [list((extra or {})[name]) for name in self.extra]
        if any(len(c) != len(vectors) for c in columns):
            raise TableError(f"{self.path}: columns of different lengths in one write")
        if not np.isfinite(vectors).all():
            bad = [ids[i] for i in np.flatnonzero(~np.isfinite(vectors).all(axis=1))[:3]]
            raise TableError(f"{self.path}: embeddings with NaN or inf for ids {bad}; check the backbone's precision")
        self._pending.append((columns, vectors))
        self._pending_rows += len(ids)
        while self._pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, n: int) -> None:
        """Write the first ``n`` pending rows as one row group."""
        if self._writer is None:
            raise RuntimeError("EmbeddingWriter.write() called outside its `with` block")
        width = 4 + len(self.extra)
        columns: list[list[Any]] = [[x for chunk, _ in self._pending for x in chunk[i]] for i in range(width)]
        vectors = np.concatenate([chunk for _, chunk in self._pending])
        rest = len(vectors) - n
        self._pending = [([c[n:] for c in columns], vectors[n:])] if rest else []
        self._pending_rows = rest
        flat = pa.array(vectors[:n].reshape(-1), type=pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, type=self.schema.field("embedding").type)
        arrays = [pa.array(c[:n], pa.string()) for c in columns]
        batch = pa.RecordBatch.from_arrays([*arrays, embedding], schema=self.schema)
        with full_disk_names(self.path):
            self._writer.write_batch(batch, row_group_size=n)
        self.rows += n

    def finish(self) -> None:
        """Write the last rows and the footer; after this only the rename is left (done on leaving the block)."""
        if self._writer is not None:
            if self._pending_rows:
                self._flush(self._pending_rows)
            with full_disk_names(self.path):
                self._writer.close()
            self._writer = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:  # the block failed: atomic_path discards the temporary file
            return bool(self._stack.__exit__(exc_type, exc, tb))
        with self._stack:
            self.finish()
        return False
