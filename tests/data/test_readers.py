"""docs/data.md's one-liners for readers outside headstart: pandas, pyarrow, polars and duckdb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from headstart.data.tables import EmbeddingWriter, load_embeddings

D = 12


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "T.parquet"
    with EmbeddingWriter(path, D, {"node": "x"}, row_group_rows=16, extra=["site"]) as writer:
        for start in range(0, 40, 10):
            ids = [f"{i:04d}" for i in range(start, start + 10)]
            writer.write(
                ids,
                ["a", "b"] * 5,
                ["train"] * 10,
                [f"{i}.png" for i in ids],
                rng.normal(size=(10, D)).astype(np.float32),
                extra={"site": ["s1", None] * 5},
            )
    return path


def test_pandas_and_pyarrow_one_liners(table: Path) -> None:
    T = str(table)
    expected = load_embeddings(T).X
    X = np.stack(pd.read_parquet(T)["embedding"].to_numpy())
    assert X.dtype == np.float32 and np.array_equal(X, expected)
    t = pq.read_table(T)
    X = t["embedding"].combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    assert X.dtype == np.float32 and np.array_equal(X, expected)
    assert pd.read_parquet(T).columns.tolist() == ["id", "label", "split", "path", "site", "embedding"]


def test_polars_one_liner(table: Path) -> None:
    pl = pytest.importorskip("polars", reason="polars is an optional reader")
    T = str(table)
    X = pl.read_parquet(T)["embedding"].to_numpy()
    assert X.shape == (40, D) and X.dtype == np.float32 and np.array_equal(X, load_embeddings(T).X)


def test_duckdb_reads_a_list_and_the_cast_makes_array_functions_work(table: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is an optional reader")
    T = str(table)
    con = duckdb.connect()
    kind = con.sql(f"SELECT typeof(embedding) FROM '{T}' LIMIT 1").fetchall()[0][0]
    assert kind in ("FLOAT[]", f"FLOAT[{D}]")  # FLOAT[] with duckdb 2.0: hence the cast in docs/data.md
    query = f"""
        SELECT id, array_cosine_similarity(embedding::FLOAT[{D}],
               (SELECT embedding::FLOAT[{D}] FROM '{T}' WHERE id = '0003')) AS similarity
        FROM '{T}' ORDER BY similarity DESC LIMIT 5"""
    rows = con.sql(query).fetchall()
    X = load_embeddings(T).X
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn @ Xn[3]
    best = np.argsort(-sims, kind="stable")[:5]
    assert [r[0] for r in rows] == [f"{i:04d}" for i in best]
    np.testing.assert_allclose([r[1] for r in rows], sims[best], atol=1e-5)
    listed = con.sql(
        f"SELECT list_cosine_similarity(embedding, (SELECT embedding FROM '{T}' WHERE id = '0003')) AS s "
        f"FROM '{T}' ORDER BY s DESC LIMIT 5"
    ).fetchall()
    np.testing.assert_allclose([r[0] for r in listed], sims[best], atol=1e-5)
