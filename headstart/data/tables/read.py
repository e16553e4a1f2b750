"""Reading the tables: whole (:func:`load_embeddings`, :func:`read_prepared`, :func:`read_failures`) or a row
group at a time (:func:`iter_embeddings`), from one file or a directory of shards alike.

Every reader checks the table's kind and schema version first, and the page checksums as it reads, so a file
that is not the expected table, or is damaged, is one :class:`TableError` naming it and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from headstart.data.tables.schema import (
    ENGINE_KEY,
    KIND_KEY,
    PROVENANCE_KEY,
    REDO,
    SCHEMA_VERSION,
    VERSION_KEY,
    TableError,
    shard_files,
)

__all__ = [  # noqa: RUF022 (grouped by role)
    "EmbeddingTable", "load_embeddings", "read_embedding_metadata", "read_failures", "read_manifest_columns",
    "read_manifest_parquet", "read_manifest_paths", "read_prepared",
    # a row group at a time
    "iter_embeddings", "read_columns", "read_prepared_images", "read_row_group", "row_groups",
]  # fmt: skip


class EmbeddingTable(NamedTuple):
    """What :func:`load_embeddings` returns: ``frame, X, labels = load_embeddings(path)``.

    ``frame`` has the columns ``id, label, split, path`` (then ``text`` in a text table, then a manifest's own
    columns; row ``i`` of ``X`` belongs to row ``i`` of the frame) and the provenance in ``frame.attrs["headstart"]``; ``X`` is a C-contiguous float32 matrix;
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


def read_meta(path: Path, kind: str) -> tuple[pa.Schema, dict[str, Any]]:
    """The schema and provenance of a ``kind`` table (a file or a directory of shards), checked."""
    if path.is_dir():
        return _read_shards_meta(path, kind)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"{path} is not a readable Parquet file ({err}); {REDO}") from err
    meta = schema.metadata or {}
    found = meta.get(KIND_KEY, b"").decode()
    if found != kind:
        what = f"a headstart '{found}' table" if found else "not a headstart table (no 'headstart.table' metadata)"
        raise TableError(f"{path} is {what}, expected a '{kind}' table")
    version = meta.get(VERSION_KEY, b"").decode()
    if version != SCHEMA_VERSION:
        raise TableError(
            f"{path} has schema version {version!r}; this headstart reads {SCHEMA_VERSION!r}. "
            "Re-create it with this version (`dvc repro` or `headstart embed`)."
        )
    payload = json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else {}
    return schema, payload


def _read_shards_meta(path: Path, kind: str) -> tuple[pa.Schema, dict[str, Any]]:
    """Metadata of a sharded table; every shard must carry the same schema and provenance."""
    files = shard_files(path)
    schema, payload = read_meta(files[0], kind)
    for other in files[1:]:
        other_schema, _ = read_meta(other, kind)
        if not other_schema.equals(schema, check_metadata=True):
            raise TableError(
                f"{other} does not have the schema and provenance of {files[0]}; the shards come from "
                "different runs. Re-create the table"
            )
    return schema, payload


def _read_table(path: Path, **kwargs: Any) -> pa.Table:
    """``pq.read_table`` with the page checksums checked; a damaged file is one line that names it and the fix."""
    try:
        return pq.read_table(path, page_checksum_verification=True, **kwargs)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"{path} is damaged ({str(err).splitlines()[0]}); {REDO}") from err


def read_embedding_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance stored in an embedding table, without reading its rows."""
    return read_meta(Path(path), "embeddings")[1]


def load_embeddings(path: str | Path, splits: Sequence[str] | None = None) -> EmbeddingTable:
    """Read an embedding table into ``(frame, X, labels)``.

    Parameters
    ----------
    path
        An ``embeddings`` Parquet file written by headstart, or a directory of its shards.
    splits
        Keep only these splits (``"train"``, ``"val"``, ``"test"``); all rows by default.

    Returns
    -------
    EmbeddingTable
        ``frame`` (``id, label, split, path``; provenance in ``frame.attrs["headstart"]``), ``X``
        (C-contiguous float32, ``(n, dim)``) and ``labels`` (numpy array of str).
    """
    path = Path(path)
    schema, provenance = read_meta(path, "embeddings")
    dim = schema.field("embedding").type.list_size
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
    if ENGINE_KEY in (schema.metadata or {}):
        frame.attrs["headstart_engine"] = json.loads(schema.metadata[ENGINE_KEY])
    labels = frame["label"].to_numpy(dtype=object)
    labels = np.where(frame["label"].isna(), None, labels) if frame["label"].isna().any() else labels.astype(str)
    return EmbeddingTable(frame, X, labels)


def read_prepared(path: str | Path, images: bool = True) -> pd.DataFrame:
    """Read a prepared dataset; its metadata is in ``frame.attrs["headstart"]``."""
    path = Path(path)
    schema, meta = read_meta(path, "prepared")
    columns = [name for name in schema.names if images or name != "image"]
    frame = _read_table(path, columns=columns).to_pandas()
    frame.attrs["headstart"] = meta
    frame.attrs["headstart_path"] = str(path)  # lets a cluster engine read the image bytes where they are
    return frame


def read_failures(path: str | Path) -> pd.DataFrame:
    """Read a failures table as a DataFrame."""
    path = Path(path)
    _, meta = read_meta(path, "failures")
    frame = _read_table(path).to_pandas()
    frame.attrs["headstart"] = meta
    return frame


def read_manifest_parquet(path: str | Path) -> pd.DataFrame:
    """Read a user's Parquet manifest (any schema) as strings; the caller checks the columns."""
    frame = pq.read_table(path).to_pandas()
    return frame.astype({c: "string" for c in frame.columns if c in ("path", "label", "split")})


def read_manifest_columns(path: str | Path) -> list[str]:
    """The column names of a user's Parquet manifest, without reading its rows."""
    return list(pq.read_schema(path).names)


def read_manifest_paths(path: str | Path) -> list[str]:
    """The non-empty ``path`` column (any case) of a user's Parquet manifest; none when it has no such column."""
    columns = {c.lower(): c for c in pq.read_schema(path).names}
    if "path" not in columns:
        return []
    return [str(n) for n in pq.read_table(path, columns=[columns["path"]]).column(0).to_pylist() if n]


def row_groups(path: str | Path) -> list[tuple[Path, int]]:
    """Every row group of a table (file, index), shard after shard: the units that heads stream over."""
    return [(f, g) for f in shard_files(path) for g in range(pq.ParquetFile(f).num_row_groups)]


def read_columns(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Only ``columns`` of a table (a file or a directory of shards), in its row order: no embeddings read."""
    parts = [_read_table(f, columns=list(columns)) for f in shard_files(path)]
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
    _, provenance = read_meta(Path(path), "embeddings")
    for file, group in row_groups(path):
        frame, X = read_row_group(file, group, int(provenance["dim"]), splits)
        if len(frame):
            yield frame, X


def read_prepared_images(path: str | Path, ids: Sequence[str]) -> dict[str, bytes | None]:
    """The ``image`` bytes of ``ids`` in a prepared table (sorted by id), reading only the row groups whose id
    range holds them. ``path`` may be a URI of a pyarrow filesystem (``s3://...``, ``gs://...``)."""
    if not ids:
        return {}
    text = str(path)
    filesystem, where = fs.FileSystem.from_uri(text) if "://" in text else (None, text)
    lo, hi = min(ids), max(ids)
    table = pq.read_table(
        where, columns=["id", "image"], filters=[("id", ">=", lo), ("id", "<=", hi)], filesystem=filesystem
    )
    found = dict(zip(table.column("id").to_pylist(), table.column("image").to_pylist(), strict=True))
    return {i: found.get(i) for i in ids}
