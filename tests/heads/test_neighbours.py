"""Nearest neighbours by cosine similarity: faiss against a numpy brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headstart.data.tables import EmbeddingTable
from headstart.heads.neighbours import nearest, nearest_rows


def _brute(X: np.ndarray, q: np.ndarray) -> np.ndarray:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return qn @ Xn.T


def test_nearest_matches_numpy_brute_force() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 16)).astype(np.float32) * rng.uniform(0.1, 10, size=(200, 1)).astype(np.float32)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    idx, sims = nearest(X, q, k=10)
    S = _brute(X.astype(np.float64), q.astype(np.float64))
    expected = np.argsort(-S, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(S, expected, axis=1), atol=1e-5)
    assert np.abs(np.linalg.norm(X, axis=1) - 1).max() > 0.5  # the input is not normalised in place


def test_exclude_and_short_tables() -> None:
    X = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    idx, sims = nearest(X, X[:1], k=2, exclude=[0])
    assert idx.tolist() == [[1, 2]]
    idx, sims = nearest(X, X[:1], k=5)
    assert idx.tolist() == [[0, 1, 2, -1, -1]] and np.isnan(sims[0, 3:]).all()
    with pytest.raises(ValueError, match="width 3 but the table has 2"):
        nearest(X, np.ones((1, 3), np.float32), k=1)


def test_rows_name_ids_paths_and_labels_only_when_labelled() -> None:
    X = np.eye(3, dtype=np.float32)
    frame = pd.DataFrame({"id": ["a", "b", "c"], "label": [None] * 3, "split": ["train"] * 3, "path": ["x", "y", "z"]})
    frame.attrs["headstart"] = {}
    rows = nearest_rows(EmbeddingTable(frame, X, frame["label"].to_numpy()), X[[2]] + 0.1 * X[[1]], ["q"], k=2)
    assert rows.columns.tolist() == ["query", "rank", "id", "path", "similarity"]
    assert rows["id"].tolist() == ["c", "b"] and rows["rank"].tolist() == [1, 2]
    labelled = frame.assign(label=["p", "q", "r"])
    rows = nearest_rows(EmbeddingTable(labelled, X, labelled["label"].to_numpy()), X[[0]], ["q"], k=1)
    assert rows["label"].tolist() == ["p"] and rows["similarity"].tolist() == [1.0]
