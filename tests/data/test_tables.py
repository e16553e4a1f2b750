"""The Parquet schema module: round trip, schema and metadata, atomic writes, clear errors."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headstart.data.tables import (
    EmbeddingWriter,
    TableError,
    load_embeddings,
    read_embedding_metadata,
    read_failures,
    write_failures,
)

PROVENANCE = {"backbone": "mobilenet_v2", "node": "features.13", "pooling": "avg"}


def _write(path: Path, n: int = 10, dim: int = 8, seed: int = 0, chunk: int = 3) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    ids = [f"{i:032x}" for i in range(n)]
    labels = [str(i % 3) for i in range(n)]
    splits = ["train", "val", "test"] * (n // 3) + ["train"] * (n % 3)
    paths = [None if i % 2 else f"img/{i}.png" for i in range(n)]
    with EmbeddingWriter(path, dim, PROVENANCE, row_group_rows=4) as writer:
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            writer.write(ids[sl], labels[sl], splits[sl], paths[sl], X[sl])
    return X


def test_round_trip_gives_contiguous_float32_and_the_frame(tmp_path: Path) -> None:
    X = _write(tmp_path / "e.parquet")
    frame, Y, labels = load_embeddings(tmp_path / "e.parquet")
    assert Y.dtype == np.float32 and Y.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(Y, X)
    assert list(frame.columns) == ["id", "label", "split", "path"]
    assert labels.tolist() == [str(i % 3) for i in range(10)]
    assert frame.attrs["headstart"]["node"] == "features.13"
    assert frame.attrs["headstart"]["dim"] == 8
    assert frame["path"].isna().sum() == 5


def test_schema_is_declared_with_fixed_size_list_and_provenance(tmp_path: Path) -> None:
    _write(tmp_path / "e.parquet")
    schema = pq.read_schema(tmp_path / "e.parquet")
    assert schema.field("embedding").type == pa.list_(pa.field("element", pa.float32(), nullable=False), 8)
    assert not schema.field("id").nullable and schema.field("path").nullable
    assert read_embedding_metadata(tmp_path / "e.parquet")["backbone"] == "mobilenet_v2"
    meta = pq.ParquetFile(tmp_path / "e.parquet").metadata
    assert meta.num_row_groups == 3  # fixed 4-row groups: 4 + 4 + 2
    column = meta.row_group(0).column(4)
    assert "BYTE_STREAM_SPLIT" in column.encodings and column.compression == "ZSTD"


def test_pandas_reads_the_table_directly(tmp_path: Path) -> None:
    X = _write(tmp_path / "e.parquet")
    frame = pd.read_parquet(tmp_path / "e.parquet")
    np.testing.assert_array_equal(np.stack(frame["embedding"].to_numpy()), X)


def test_split_filter(tmp_path: Path) -> None:
    _write(tmp_path / "e.parquet", n=9)
    frame, X, _ = load_embeddings(tmp_path / "e.parquet", splits=["test"])
    assert set(frame["split"]) == {"test"} and len(X) == 3


def test_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", chunk=3)
    _write(tmp_path / "b.parquet", chunk=7)  # how rows arrive does not change the file
    assert filecmp.cmp(tmp_path / "a.parquet", tmp_path / "b.parquet", shallow=False)


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "e.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        with EmbeddingWriter(target, 4, PROVENANCE) as writer:
            writer.write(["a"], ["x"], ["train"], [None], np.zeros((1, 4), np.float32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_wrong_width_and_nan_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"shape \(n, 4\)"):
        with EmbeddingWriter(tmp_path / "e.parquet", 4, PROVENANCE) as writer:
            writer.write(["a"], ["x"], ["train"], [None], np.zeros((1, 5), np.float32))
    with pytest.raises(TableError, match="NaN"):
        with EmbeddingWriter(tmp_path / "e.parquet", 4, PROVENANCE) as writer:
            writer.write(["a"], ["x"], ["train"], [None], np.full((1, 4), np.nan, np.float32))
    assert not (tmp_path / "e.parquet").exists()


def test_reading_something_else_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), other)
    with pytest.raises(TableError, match="other.parquet is not a headstart table"):
        load_embeddings(other)
    write_failures(tmp_path / "f.parquet", [], None)
    with pytest.raises(TableError, match="'failures' table, expected a 'embeddings'"):
        load_embeddings(tmp_path / "f.parquet")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_embeddings(tmp_path / "missing.parquet")


def test_metadata_that_disagrees_with_the_column_is_caught(tmp_path: Path) -> None:
    _write(tmp_path / "e.parquet")
    table = pq.read_table(tmp_path / "e.parquet")
    meta = dict(table.schema.metadata)
    meta[b"headstart"] = meta[b"headstart"].replace(b'"dim":8', b'"dim":16')
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "tampered.parquet")
    with pytest.raises(TableError, match="width 8 but the metadata says 16"):
        load_embeddings(tmp_path / "tampered.parquet")


def test_failures_round_trip(tmp_path: Path) -> None:
    rows = [{"id": "a", "label": "x", "split": "test", "path": "p.jpg", "error": "truncated"}]
    write_failures(tmp_path / "f.parquet", rows, {"backbone": "b"})
    frame = read_failures(tmp_path / "f.parquet")
    assert frame.to_dict("records") == rows
