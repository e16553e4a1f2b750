"""The Parquet tables headstart writes, their schemas and their IO. No other module touches Parquet.

Three tables:

``prepared``   one row per image of a dataset: ``id, label, split, path, image`` (``image`` holds PNG bytes
               for built-in array datasets; ``path`` points at the file otherwise).
``embeddings`` one row per embedded image: ``id, label, split, path, embedding`` where ``embedding`` is a
               ``fixed_size_list<float32>[d]``; the provenance (backbone, weights, node, pooling,
               preprocessing, precision, versions) is JSON in the key-value metadata under ``headstart``.
``failures``   one row per image that could not be embedded: ``id, label, split, path, error``.

Every writer writes to a temporary file beside the target and renames it at the end, so a failed run
never leaves a partial table. Rows are written in fixed-size row groups in the order given (callers sort
by ``id``), with no timestamps, so the same input gives the same bytes.

Example
-------
>>> frame, X, labels = load_embeddings("embeddings/digits/mobilenet_v2/features.13.parquet")  # doctest: +SKIP
>>> X.dtype, X.flags["C_CONTIGUOUS"], frame.attrs["headstart"]["node"]                      # doctest: +SKIP
(dtype('float32'), True, 'features.13')
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from headstart._files import atomic_path
from headstart.errors import UserError

__all__ = [
    "EmbeddingTable",
    "EmbeddingWriter",
    "SCHEMA_VERSION",
    "ShardedEmbeddingWriter",
    "TableError",
    "embedding_schema",
    "failures_schema",
    "iter_embeddings",
    "load_embeddings",
    "prepared_schema",
    "read_embedding_metadata",
    "read_failures",
    "read_manifest_parquet",
    "read_prepared",
    "read_prepared_images",
    "read_row_group",
    "row_groups",
    "shard_files",
    "shard_rows",
    "write_failures",
    "write_prepared",
]

SCHEMA_VERSION = "1"
ROW_GROUP_ROWS = 4096
_KIND_KEY = b"headstart.table"
_VERSION_KEY = b"headstart.schema_version"
_PROVENANCE_KEY = b"headstart"


class TableError(UserError, ValueError):
    """A Parquet file is not the headstart table it was expected to be."""


class EmbeddingTable(NamedTuple):
    """What :func:`load_embeddings` returns: ``frame, X, labels = load_embeddings(path)``.

    ``frame`` has the columns ``id, label, split, path`` (row ``i`` of ``X`` belongs to row ``i`` of the
    frame) and the provenance in ``frame.attrs["headstart"]``; ``X`` is a C-contiguous float32 matrix;
    ``labels`` is the string label of each row as a numpy array.
    """

    frame: pd.DataFrame
    X: np.ndarray
    labels: np.ndarray

    @property
    def provenance(self) -> dict[str, Any]:
        return self.frame.attrs["headstart"]


_BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=True),
]


def prepared_schema(metadata: Mapping[str, Any] | None = None) -> pa.Schema:
    """Schema of a prepared dataset: one row per image, PNG bytes for built-in arrays."""
    fields = [*_BASE_FIELDS, pa.field("image", pa.binary(), nullable=True)]
    return pa.schema(fields, metadata=_metadata("prepared", metadata))


def embedding_schema(dim: int, provenance: Mapping[str, Any]) -> pa.Schema:
    """Schema of an embedding table of width ``dim``, with its provenance in the metadata."""
    if dim < 1:
        raise TableError(f"embedding dim must be positive, got {dim}")
    fields = [
        *_BASE_FIELDS,
        pa.field("embedding", pa.list_(pa.field("element", pa.float32(), nullable=False), dim), nullable=False),
    ]
    return pa.schema(fields, metadata=_metadata("embeddings", {**provenance, "dim": dim}))


def failures_schema(provenance: Mapping[str, Any] | None = None) -> pa.Schema:
    """Schema of the failures table that sits beside the embeddings."""
    fields = [*_BASE_FIELDS, pa.field("error", pa.string(), nullable=False)]
    return pa.schema(fields, metadata=_metadata("failures", provenance))


def _metadata(kind: str, payload: Mapping[str, Any] | None) -> dict[bytes, bytes]:
    meta = {_KIND_KEY: kind.encode(), _VERSION_KEY: SCHEMA_VERSION.encode()}
    if payload is not None:
        meta[_PROVENANCE_KEY] = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return meta


def _writer(where: Path, schema: pa.Schema, float_column: str | None = None) -> pq.ParquetWriter:
    kwargs: dict[str, Any] = {"compression": "zstd", "write_statistics": ["id", "label", "split"]}
    if float_column is not None:
        # Byte-stream-split groups the bytes of the floats by significance, which zstd then compresses
        # well and, more to the point, decodes fast (see benchmarks/embed_throughput.py).
        kwargs["use_dictionary"] = ["id", "label", "split", "path"]
        kwargs["use_byte_stream_split"] = [f"{float_column}.list.element"]
    return pq.ParquetWriter(where, schema, **kwargs)


class EmbeddingWriter:
    """Stream rows into an embedding table, in fixed-size row groups, atomically.

    >>> with EmbeddingWriter("out.parquet", dim=96, provenance={"node": "features.13"}) as w:  # doctest: +SKIP
    ...     w.write(ids, labels, splits, paths, vectors)
    """

    def __init__(
        self, path: str | Path, dim: int, provenance: Mapping[str, Any], row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.schema = embedding_schema(dim, provenance)
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._pending: list[tuple[list[str], list[str], list[str], list[str | None], np.ndarray]] = []
        self._pending_rows = 0
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> EmbeddingWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._writer = _writer(tmp, self.schema, float_column="embedding")
        self._stack.callback(self._writer.close)
        return self

    def write(
        self,
        ids: Sequence[str],
        labels: Sequence[str],
        splits: Sequence[str],
        paths: Sequence[str | None],
        vectors: np.ndarray,
    ) -> None:
        """Append rows; ``vectors`` is ``(len(ids), dim)``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise TableError(f"{self.path}: expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        if not len(ids) == len(labels) == len(splits) == len(paths) == len(vectors):
            raise TableError(f"{self.path}: columns of different lengths in one write")
        if not np.isfinite(vectors).all():
            bad = [ids[i] for i in np.flatnonzero(~np.isfinite(vectors).all(axis=1))[:3]]
            raise TableError(f"{self.path}: embeddings with NaN or inf for ids {bad}; check the backbone's precision")
        self._pending.append((list(ids), list(labels), list(splits), list(paths), vectors))
        self._pending_rows += len(ids)
        while self._pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, n: int) -> None:
        """Write the first ``n`` pending rows as one row group."""
        ids: list[str] = []
        labels: list[str] = []
        splits: list[str] = []
        paths: list[str | None] = []
        chunks: list[np.ndarray] = []
        while self._pending and len(ids) < n:
            c_ids, c_labels, c_splits, c_paths, c_vecs = self._pending.pop(0)
            room = n - len(ids)
            if len(c_ids) > room:
                self._pending.insert(0, (c_ids[room:], c_labels[room:], c_splits[room:], c_paths[room:], c_vecs[room:]))
                c_ids, c_labels, c_splits, c_paths, c_vecs = (
                    c_ids[:room],
                    c_labels[:room],
                    c_splits[:room],
                    c_paths[:room],
                    c_vecs[:room],
                )
            ids += c_ids
            labels += c_labels
            splits += c_splits
            paths += c_paths
            chunks.append(c_vecs)
        self._pending_rows -= len(ids)
        flat = pa.array(np.concatenate(chunks).reshape(-1), type=pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, type=self.schema.field("embedding").type)
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array(labels, pa.string()),
                pa.array(splits, pa.string()),
                pa.array(paths, pa.string()),
                embedding,
            ],
            schema=self.schema,
        )
        if self._writer is None:
            raise RuntimeError("EmbeddingWriter.write() called outside its `with` block")
        self._writer.write_batch(batch, row_group_size=n)
        self.rows += len(ids)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self._pending_rows:
                self._flush(self._pending_rows)
        finally:
            if exc_type is not None:
                # Make the atomic_path context discard the temporary file.
                self._stack.__exit__(exc_type, exc, tb)
            else:
                self._stack.close()


def _read_meta(path: Path, kind: str) -> tuple[pa.Schema, dict[str, Any]]:
    if path.is_dir():
        return _read_shards_meta(path, kind)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise TableError(f"{path} is not a readable Parquet file ({err})") from err
    meta = schema.metadata or {}
    found = meta.get(_KIND_KEY, b"").decode()
    if found != kind:
        what = f"a headstart '{found}' table" if found else "not a headstart table (no 'headstart.table' metadata)"
        raise TableError(f"{path} is {what}, expected a '{kind}' table")
    version = meta.get(_VERSION_KEY, b"").decode()
    if version != SCHEMA_VERSION:
        raise TableError(
            f"{path} has schema version {version!r}; this headstart reads {SCHEMA_VERSION!r}. "
            "Re-create it with this version (`dvc repro` or `headstart embed`)."
        )
    payload = json.loads(meta[_PROVENANCE_KEY]) if _PROVENANCE_KEY in meta else {}
    return schema, payload


def read_embedding_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance stored in an embedding table, without reading its rows."""
    return _read_meta(Path(path), "embeddings")[1]


def load_embeddings(path: str | Path, splits: Sequence[str] | None = None) -> EmbeddingTable:
    """Read an embedding table into ``(frame, X, labels)``.

    Parameters
    ----------
    path
        An ``embeddings`` Parquet file written by headstart.
    splits
        Keep only these splits (``"train"``, ``"val"``, ``"test"``); all rows by default.

    Returns
    -------
    EmbeddingTable
        ``frame`` (``id, label, split, path``; provenance in ``frame.attrs["headstart"]``), ``X``
        (C-contiguous float32, ``(n, dim)``) and ``labels`` (numpy array of str).
    """
    path = Path(path)
    schema, provenance = _read_meta(path, "embeddings")
    field_type = schema.field("embedding").type
    dim = field_type.list_size
    if provenance.get("dim") != dim:
        raise TableError(
            f"{path}: the embedding column has width {dim} but the metadata says {provenance.get('dim')}; "
            "the file was altered after headstart wrote it. Re-create it."
        )
    filters = [("split", "in", list(splits))] if splits is not None else None
    parts = [pq.read_table(f, filters=filters, use_threads=True) for f in shard_files(path)]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    X = np.empty((table.num_rows, dim), dtype=np.float32)
    row = 0
    for chunk in table.column("embedding").chunks:
        values = chunk.flatten().to_numpy(zero_copy_only=False)
        X[row : row + len(chunk)] = values.reshape(len(chunk), dim)
        row += len(chunk)
    frame = table.drop_columns(["embedding"]).to_pandas()
    frame.attrs["headstart"] = provenance
    if _ENGINE_KEY in (schema.metadata or {}):
        frame.attrs["headstart_engine"] = json.loads(schema.metadata[_ENGINE_KEY])
    return EmbeddingTable(frame, X, frame["label"].to_numpy(dtype=object).astype(str))


def write_prepared(path: str | Path, frame: pd.DataFrame, metadata: Mapping[str, Any]) -> None:
    """Write a prepared dataset (columns ``id, label, split, path, image``), atomically."""
    schema = prepared_schema(metadata)
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise TableError(f"prepared table for {path} lacks columns {missing}")
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        with _writer(tmp, schema) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def read_prepared(path: str | Path, images: bool = True) -> pd.DataFrame:
    """Read a prepared dataset; its metadata is in ``frame.attrs["headstart"]``."""
    path = Path(path)
    _, meta = _read_meta(path, "prepared")
    columns = ["id", "label", "split", "path"] + (["image"] if images else [])
    frame = pq.read_table(path, columns=columns).to_pandas()
    frame.attrs["headstart"] = meta
    frame.attrs["headstart_path"] = str(path)  # lets a cluster engine read the image bytes where they are
    return frame


def write_failures(path: str | Path, rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any] | None) -> None:
    """Write the failures table (possibly empty), atomically."""
    schema = failures_schema(provenance)
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_path(path) as tmp:
        with _writer(tmp, schema) as writer:
            writer.write_table(table)


def read_failures(path: str | Path) -> pd.DataFrame:
    """Read a failures table as a DataFrame."""
    path = Path(path)
    _, meta = _read_meta(path, "failures")
    frame = pq.read_table(path).to_pandas()
    frame.attrs["headstart"] = meta
    return frame


def read_manifest_parquet(path: str | Path) -> pd.DataFrame:
    """Read a user's Parquet manifest (any schema) as strings; the caller checks the columns."""
    frame = pq.read_table(path).to_pandas()
    return frame.astype({c: "string" for c in frame.columns if c in ("path", "label", "split")})


from headstart.data._shards import (  # noqa: E402 - the sharded forms build on the helpers above
    _ENGINE_KEY,
    ShardedEmbeddingWriter,
    _read_shards_meta,
    iter_embeddings,
    read_prepared_images,
    read_row_group,
    row_groups,
    shard_files,
    shard_rows,
)
