"""The tables' schemas and metadata keys, and where the shards of a sharded table live.

Every table carries its kind (``headstart.table``) and :data:`SCHEMA_VERSION` in the key-value metadata, and
the provenance as canonical JSON under ``headstart``; a sharded embedding table may add information about the
run (engine, cluster size) under ``headstart.engine``, outside the provenance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from headstart.errors import UserError

__all__ = [
    "ROW_GROUP_ROWS", "SCHEMA_VERSION", "SHARD_BYTES", "TEXT_COLUMN", "TableError", "embedding_schema",
    "failures_schema", "prepared_schema", "shard_files", "shard_rows",
]  # fmt: skip

SCHEMA_VERSION = "2"  # 2: a text table holds its texts in a `text` column
ROW_GROUP_ROWS = 4096
SHARD_BYTES = 256 * 2**20
KIND_KEY = b"headstart.table"
VERSION_KEY = b"headstart.schema_version"
PROVENANCE_KEY = b"headstart"
ENGINE_KEY = b"headstart.engine"
SHARD_NAME = "part-{:05d}.parquet"
REDO = "re-run the stage that wrote it (`dvc repro --force STAGE`, or the `headstart` command that made it)"
OWN_COLUMNS = ("id", "label", "split", "path", "image", "embedding", "error")
TEXT_COLUMN = "text"  # a text dataset's texts, right after `path` (which is null for them)


class TableError(UserError, ValueError):
    """A Parquet file is not the headstart table it was expected to be."""


_BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=True),
]


def _fields(labelled: bool, extra: Sequence[str]) -> list[pa.Field]:
    """The base fields (``label`` nullable only when unlabelled), then the extra text columns, ``text`` first."""
    clash = sorted(set(extra) & set(OWN_COLUMNS))
    if clash:
        raise TableError(f"extra column(s) {clash} clash with headstart's own columns; rename them")
    base = _BASE_FIELDS if labelled else [f.with_nullable(True) if f.name == "label" else f for f in _BASE_FIELDS]
    extra = [TEXT_COLUMN, *(n for n in extra if n != TEXT_COLUMN)] if TEXT_COLUMN in extra else list(extra)
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
    meta = {KIND_KEY: kind.encode(), VERSION_KEY: SCHEMA_VERSION.encode()}
    if payload is not None:
        meta[PROVENANCE_KEY] = canonical_json(payload)
    return meta


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The bytes a metadata value is stored as: sorted keys, no spaces, so the same payload gives the same file."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def shard_rows(dim: int, target_bytes: int = SHARD_BYTES) -> int:
    """Rows per shard so that a shard of ``dim``-wide float32 vectors is about ``target_bytes`` (before
    compression, which gains little on floats), in whole row groups.

    >>> shard_rows(384), shard_rows(1280)
    (163840, 49152)
    """
    per_row = 4 * dim + 64  # the vector, plus id, label, split and path
    groups = max(1, target_bytes // per_row // ROW_GROUP_ROWS)
    return int(groups * ROW_GROUP_ROWS)


def shard_files(path: str | Path) -> list[Path]:
    """The Parquet files of a table: ``[path]`` for a file, the ``part-*.parquet`` shards of a directory."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("part-*.parquet"))
    if not files:
        raise TableError(f"{path} is a directory without part-*.parquet shards; re-create the table")
    expected = [SHARD_NAME.format(i) for i in range(len(files))]
    if [f.name for f in files] != expected:
        raise TableError(f"{path}: shards are not numbered part-00000.parquet onwards without gaps; re-create it")
    return files
