"""The Parquet tables headstart writes, their schemas and their IO. No other module touches Parquet, except
:mod:`headstart.data.table_writer`, which streams embedding tables out with this module's schema and settings.

Three tables:

``prepared``   one row per image of a dataset: ``id, label, split, path, image`` (``image`` holds PNG bytes
               for built-in array datasets; ``path`` points at the file otherwise).
``embeddings`` one row per embedded image: ``id, label, split, path, embedding`` where ``embedding`` is a
               ``fixed_size_list<float32>[d]``; the provenance (backbone, weights, node, pooling,
               preprocessing, precision, versions) is JSON in the key-value metadata under ``headstart``.
``failures``   one row per image that could not be embedded: ``id, label, split, path, error``.

An unlabelled collection (a plain image folder, a manifest without ``label``) has a null ``label`` in every
row (the column is nullable only in such tables). A manifest's extra columns (a patient or site id, ...) follow
``path`` as nullable text columns in the prepared and embedding tables; they never enter ids or fingerprints.

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

__all__ = [  # noqa: RUF022 (grouped by role)
    "SCHEMA_VERSION", "EmbeddingTable", "TableError", "embedding_schema", "failures_schema",
    "prepared_schema", "load_embeddings", "read_embedding_metadata", "read_failures", "read_manifest_parquet",
    "read_prepared", "write_failures", "write_prepared",
    # the sharded form and reading a row group at a time (headstart.data._shards)
    "ShardedEmbeddingWriter", "iter_embeddings", "read_prepared_images", "read_row_group", "row_groups",
    "shard_files", "shard_rows",
]  # fmt: skip

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
    ``labels`` is the string label of each row as a numpy array (``None`` in every row of an unlabelled
    table; see :attr:`labelled`).
    """

    frame: pd.DataFrame
    X: np.ndarray
    labels: np.ndarray

    @property
    def provenance(self) -> dict[str, Any]:
        return self.frame.attrs["headstart"]

    @property
    def labelled(self) -> bool:
        """False for an unlabelled collection (null labels), which heads refuse."""
        return not self.frame["label"].isna().any()


_BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=True),
]


def _fields(labelled: bool, extra: Sequence[str]) -> list[pa.Field]:
    """The base fields (``label`` nullable only when unlabelled), then the extra text columns."""
    clash = sorted(set(extra) & {"id", "label", "split", "path", "image", "embedding", "error"})
    if clash:
        raise TableError(f"extra column(s) {clash} clash with headstart's own columns; rename them")
    base = _BASE_FIELDS if labelled else [f.with_nullable(True) if f.name == "label" else f for f in _BASE_FIELDS]
    return [*base, *(pa.field(name, pa.string(), nullable=True) for name in extra)]


def prepared_schema(
    metadata: Mapping[str, Any] | None = None, *, labelled: bool = True, extra: Sequence[str] = ()
) -> pa.Schema:
    """Schema of a prepared dataset: one row per image, PNG bytes for built-in arrays."""
    fields = [*_fields(labelled, extra), pa.field("image", pa.binary(), nullable=True)]
    return pa.schema(fields, metadata=_metadata("prepared", metadata))


def embedding_schema(
    dim: int, provenance: Mapping[str, Any], *, labelled: bool = True, extra: Sequence[str] = ()
) -> pa.Schema:
    """Schema of an embedding table of width ``dim``, with its provenance in the metadata."""
    if dim < 1:
        raise TableError(f"embedding dim must be positive, got {dim}")
    fields = [
        *_fields(labelled, extra),
        pa.field("embedding", pa.list_(pa.field("element", pa.float32(), nullable=False), dim), nullable=False),
    ]
    return pa.schema(fields, metadata=_metadata("embeddings", {**provenance, "dim": dim}))


def failures_schema(provenance: Mapping[str, Any] | None = None, *, labelled: bool = True) -> pa.Schema:
    """Schema of the failures table that sits beside the embeddings."""
    fields = [*_fields(labelled, ()), pa.field("error", pa.string(), nullable=False)]
    return pa.schema(fields, metadata=_metadata("failures", provenance))


def _metadata(kind: str, payload: Mapping[str, Any] | None) -> dict[bytes, bytes]:
    meta = {_KIND_KEY: kind.encode(), _VERSION_KEY: SCHEMA_VERSION.encode()}
    if payload is not None:
        meta[_PROVENANCE_KEY] = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return meta


def _writer(where: Path, schema: pa.Schema, float_column: str | None = None) -> pq.ParquetWriter:
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


def _read_meta(path: Path, kind: str) -> tuple[pa.Schema, dict[str, Any]]:
    if path.is_dir():
        return _read_shards_meta(path, kind)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"{path} is not a readable Parquet file ({err}); {_REDO}") from err
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


_REDO = "re-run the stage that wrote it (`dvc repro --force STAGE`, or the `headstart` command that made it)"


def _read_table(path: Path, **kwargs: Any) -> pa.Table:
    """``pq.read_table`` with the page checksums checked; a damaged file is one line that names it and the fix."""
    try:
        return pq.read_table(path, page_checksum_verification=True, **kwargs)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"{path} is damaged ({str(err).splitlines()[0]}); {_REDO}") from err


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
    parts = [_read_table(f, filters=filters, use_threads=True) for f in shard_files(path)]
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
    labels = frame["label"].to_numpy(dtype=object)
    labels = np.where(frame["label"].isna(), None, labels) if frame["label"].isna().any() else labels.astype(str)
    return EmbeddingTable(frame, X, labels)


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
        with _writer(tmp, schema) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def read_prepared(path: str | Path, images: bool = True) -> pd.DataFrame:
    """Read a prepared dataset; its metadata is in ``frame.attrs["headstart"]``."""
    path = Path(path)
    schema, meta = _read_meta(path, "prepared")
    columns = [name for name in schema.names if images or name != "image"]
    frame = _read_table(path, columns=columns).to_pandas()
    frame.attrs["headstart"] = meta
    frame.attrs["headstart_path"] = str(path)  # lets a cluster engine read the image bytes where they are
    return frame


def write_failures(path: str | Path, rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any] | None) -> None:
    """Write the failures table (possibly empty), atomically."""
    schema = failures_schema(provenance, labelled=all(r.get("label") is not None for r in rows))
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_path(path) as tmp:
        with _writer(tmp, schema) as writer:
            writer.write_table(table)


def read_failures(path: str | Path) -> pd.DataFrame:
    """Read a failures table as a DataFrame."""
    path = Path(path)
    _, meta = _read_meta(path, "failures")
    frame = _read_table(path).to_pandas()
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
