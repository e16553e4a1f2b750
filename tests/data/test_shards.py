"""Sharded embedding tables: a directory of part-NNNNN.parquet that every reader takes like one file."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from headstart.data.tables import (
    EmbeddingWriter,
    ShardedEmbeddingWriter,
    TableError,
    iter_embeddings,
    load_embeddings,
    read_embedding_metadata,
    shard_files,
)

PROV = {"backbone": "test", "node": "x", "pooling": "avg"}


def _rows(n: int, dim: int = 6, seed: int = 0) -> tuple[list[str], list[str], list[str], list[None], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [f"{i:08x}" for i in range(n)]
    labels = [str(i % 3) for i in range(n)]
    splits = ["train", "val", "test"] * (n // 3) + ["train"] * (n % 3)
    return ids, labels, splits, [None] * n, rng.standard_normal((n, dim)).astype(np.float32)


def _write(path: Path, rows_per_shard: int, n: int = 25, chunks: int = 4) -> None:
    ids, labels, splits, paths, X = _rows(n)
    with ShardedEmbeddingWriter(path, 6, PROV, rows_per_shard=rows_per_shard) as writer:
        for part in np.array_split(np.arange(n), chunks):
            s, e = int(part[0]), int(part[-1]) + 1
            writer.write(ids[s:e], labels[s:e], splits[s:e], paths[s:e], X[s:e])


def test_shards_hold_fixed_rows_in_id_order_and_read_back_as_the_whole(tmp_path: Path) -> None:
    _write(tmp_path / "one.parquet", rows_per_shard=1000)
    _write(tmp_path / "many.parquet", rows_per_shard=10)
    assert (tmp_path / "one.parquet").is_file() and (tmp_path / "many.parquet").is_dir()
    files = shard_files(tmp_path / "many.parquet")
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [len(pd.read_parquet(f)) for f in files] == [10, 10, 5]
    one, many = load_embeddings(tmp_path / "one.parquet"), load_embeddings(tmp_path / "many.parquet")
    assert one.frame.equals(many.frame) and np.array_equal(one.X, many.X) and one.provenance == many.provenance
    assert many.frame["id"].is_monotonic_increasing
    assert read_embedding_metadata(tmp_path / "many.parquet")["dim"] == 6
    val = load_embeddings(tmp_path / "many.parquet", splits=["val"])
    assert (val.frame["split"] == "val").all() and len(val.frame) == 8
    streamed = list(iter_embeddings(tmp_path / "many.parquet", splits=["train", "test"]))
    assert np.array_equal(np.concatenate([x for _, x in streamed]), one.X[one.frame["split"] != "val"])


def test_one_shard_is_the_bytes_of_the_plain_writer(tmp_path: Path) -> None:
    ids, labels, splits, paths, X = _rows(25)
    with EmbeddingWriter(tmp_path / "plain.parquet", 6, PROV) as writer:
        writer.write(ids, labels, splits, paths, X)
    _write(tmp_path / "sharded.parquet", rows_per_shard=1000)
    assert filecmp.cmp(tmp_path / "plain.parquet", tmp_path / "sharded.parquet", shallow=False)


def test_other_tools_read_the_directory_in_one_call(tmp_path: Path) -> None:
    _write(tmp_path / "many.parquet", rows_per_shard=10)
    where = tmp_path / "many.parquet"
    assert len(pd.read_parquet(where)) == 25
    assert pads.dataset(where, format="parquet").to_table().num_rows == 25
    polars = pytest.importorskip("polars", reason="polars is not installed")
    assert polars.read_parquet(f"{where}/*.parquet").height == 25


def test_duckdb_reads_the_directory(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed")
    _write(tmp_path / "many.parquet", rows_per_shard=10)
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'many.parquet'}/*.parquet'").fetchall() == [(25,)]


def test_a_file_and_a_directory_replace_each_other_and_a_failure_keeps_the_old(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    _write(target, rows_per_shard=10)
    _write(target, rows_per_shard=1000)
    assert target.is_file() and len(load_embeddings(target).frame) == 25
    _write(target, rows_per_shard=10, n=30)
    assert target.is_dir() and len(load_embeddings(target).frame) == 30
    ids, labels, splits, paths, X = _rows(25)
    with pytest.raises(TableError, match="NaN"):
        with ShardedEmbeddingWriter(target, 6, PROV, rows_per_shard=10) as writer:
            writer.write(ids[:12], labels[:12], splits[:12], paths[:12], X[:12])
            writer.write(ids[12:], labels[12:], splits[12:], paths[12:], X[12:] * np.nan)
    assert len(load_embeddings(target).frame) == 30  # the earlier good table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # nothing left beside it


def test_shards_from_different_runs_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", rows_per_shard=10)
    ids, labels, splits, paths, X = _rows(5)
    with ShardedEmbeddingWriter(tmp_path / "b.parquet", 6, {**PROV, "node": "y"}, rows_per_shard=1000) as w:
        w.write(ids, labels, splits, paths, X)
    (tmp_path / "b.parquet").replace(tmp_path / "a.parquet" / "part-00001.parquet")
    with pytest.raises(TableError, match="different runs"):
        load_embeddings(tmp_path / "a.parquet")
    (tmp_path / "a.parquet" / "part-00001.parquet").unlink()
    with pytest.raises(TableError, match="without gaps"):
        load_embeddings(tmp_path / "a.parquet")


def test_heads_predict_and_provenance_read_a_sharded_table_like_one_file(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from headstart.heads.persist import load_head
    from headstart.workflow.fit import fit_table
    from headstart.workflow.predict import predict_table

    X, y = load_digits(return_X_y=True)
    ids = [f"{i:08x}" for i in range(len(X))]
    splits = np.where(np.arange(len(X)) % 10 < 2, "test", np.where(np.arange(len(X)) % 10 < 4, "val", "train"))
    prov = {**PROV, "dim": 64}
    for name, rows in (("one", 10_000), ("many", 500)):
        with ShardedEmbeddingWriter(tmp_path / f"{name}.parquet", 64, prov, rows_per_shard=rows) as writer:
            writer.write(ids, [str(v) for v in y], splits.tolist(), [None] * len(X), X.astype(np.float32))
    assert (tmp_path / "many.parquet").is_dir() and len(shard_files(tmp_path / "many.parquet")) == 4
    fitted = {}
    for name in ("one", "many"):
        evaluation, _ = fit_table(tmp_path / f"{name}.parquet", "logreg", {"C": 1.0}, tmp_path / f"m-{name}", seeds=1, few_shot=())
        fitted[name] = evaluation.metrics["accuracy"]
        bundle = load_head(tmp_path / f"m-{name}")
        rows = predict_table(bundle, load_embeddings(tmp_path / "many.parquet"), "many")  # provenance checked
        assert len(rows) == len(X)
    assert fitted["one"] == fitted["many"] > 0.9
