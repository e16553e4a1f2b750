"""Heads that stream: the mini-batch linear probe against L-BFGS, IVF-PQ k-NN against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from headstart.data.tables import ShardedEmbeddingWriter
from headstart.heads.knn import bytes_per_vector
from headstart.heads.registry import build_head
from headstart.heads.chunks import ArrayChunks, TableChunks
from headstart.heads.knn_head import fit_knn_stream, knn_recall
from headstart.heads.linear import sweep_logreg_C
from headstart.heads.stream import StreamingLinearProbe, fit_probe_stream

CS = [float(c) for c in 10.0 ** np.linspace(-3, 2, 6)]


def _lbfgs_test_accuracy(Xtr, ytr, Xva, yva, Xte, yte) -> float:  # type: ignore[no-untyped-def]
    accuracies = sweep_logreg_C(Xtr, ytr, Xva, yva, CS)
    best = CS[int(np.argmax(accuracies))]
    head = build_head("logreg", {"C": best, "max_iter": 1000, "tol": 1e-4})
    return float(head.fit(np.vstack([Xtr, Xva]), np.concatenate([ytr, yva])).score(Xte, yte))


def _stream_test_accuracy(Xtr, ytr, Xva, yva, Xte, yte, rows: int) -> float:  # type: ignore[no-untyped-def]
    both = ArrayChunks(np.vstack([Xtr, Xva]), np.concatenate([ytr, yva]), rows)
    probe, scores = fit_probe_stream(ArrayChunks(Xtr, ytr, rows), ArrayChunks(Xva, yva, rows), both, CS)
    assert [c for c, _ in scores] == CS
    return float(probe.score(Xte, yte))


def _splits(X: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=0.2, random_state=0, stratify=ytr)
    return Xtr, ytr, Xva, yva, Xte, yte


def test_streaming_probe_is_within_half_a_point_of_lbfgs_on_digits() -> None:
    X, y = load_digits(return_X_y=True)
    parts = _splits(X.astype(np.float32), y)
    lbfgs = _lbfgs_test_accuracy(*parts)
    stream = _stream_test_accuracy(*parts, rows=300)
    assert lbfgs > 0.94 and abs(stream - lbfgs) <= 0.005, (stream, lbfgs)


def _synthetic(n: int, dim: int = 32, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 0.6
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


@pytest.mark.slow
def test_streaming_probe_is_within_half_a_point_of_lbfgs_on_50000_rows() -> None:
    parts = _splits(*_synthetic(50_000))
    lbfgs = _lbfgs_test_accuracy(*parts)
    stream = _stream_test_accuracy(*parts, rows=4096)
    assert 0.5 < lbfgs < 0.99 and abs(stream - lbfgs) <= 0.005, (stream, lbfgs)


def test_probe_behaves_like_an_estimator() -> None:
    X, y = _synthetic(600, dim=8, classes=3)
    probe = StreamingLinearProbe(C=1.0, min_steps=500).fit(X, y.astype(str))
    assert probe.classes_.tolist() == ["0", "1", "2"] and probe.n_features_in_ == 8
    proba = probe.predict_proba(X[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(X)
    lbfgs = LogisticRegression(C=1.0).fit(Z, y.astype(str))
    assert abs(probe.score(X, y.astype(str)) - lbfgs.score(Z, y.astype(str))) < 0.02
    with pytest.raises(ValueError, match="C must be positive"):
        StreamingLinearProbe(C=0).fit(X, y)


def _table(path: Path, X: np.ndarray, y: np.ndarray, rows_per_shard: int) -> Path:
    ids = [f"{i:08x}" for i in range(len(X))]
    splits = np.where(np.arange(len(X)) % 5 == 0, "val", "train").tolist()
    with ShardedEmbeddingWriter(path, X.shape[1], {"node": "x"}, rows_per_shard=rows_per_shard) as writer:
        writer.write(ids, [str(v) for v in y], splits, [None] * len(X), X)
    return path


def test_probe_streams_a_sharded_table_like_the_arrays(tmp_path: Path) -> None:
    X, y = _synthetic(5000, dim=16, classes=4)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=2000)
    assert path.is_dir()
    train = TableChunks(path, ["train"])
    assert len(train) == 3  # one row group per shard at this size
    probe = StreamingLinearProbe(C=1.0, min_steps=800).fit_chunks(train)
    keep = np.arange(len(X)) % 5 != 0
    reference = StreamingLinearProbe(C=1.0, min_steps=800).fit_chunks(ArrayChunks(X[keep], y[keep].astype(str), 4096))
    assert probe.n_ == keep.sum() == reference.n_
    assert np.allclose(probe.mean_, reference.mean_, atol=1e-5)
    assert abs(probe.score(X[~keep], y[~keep].astype(str)) - reference.score(X[~keep], y[~keep].astype(str))) < 0.02


def test_ivfpq_knn_streams_a_table_and_reports_its_recall(tmp_path: Path) -> None:
    X, y = _synthetic(20_000, dim=32, classes=10)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=8192)
    knn = fit_knn_stream(TableChunks(path), sample_rows=12_000, index="ivfpq", k=10, nlist=64)
    assert knn.index_.ntotal == 20_000 and len(knn._y) == 20_000
    assert bytes_per_vector(knn.index_) == 4 + 32  # pq_m auto (a byte per 8 dimensions), then SQ8 (a byte each)
    queries = X[:200]
    recall = knn_recall(knn, TableChunks(path), queries, k=10)
    exact = build_head("knn", {"k": 10}).fit(X, y.astype(str))
    coarse = fit_knn_stream(TableChunks(path), sample_rows=12_000, index="ivfpq", k=10, nlist=64, refine="none")
    assert bytes_per_vector(coarse.index_) == 4
    coarse_recall = knn_recall(coarse, TableChunks(path), queries, k=10)
    # PQ codes alone: close neighbours, not all the exact ones; ranked again on the SQ8 copy, far more of them
    # (isotropic clusters are the hard case: their ten nearest neighbours are nearly tied)
    assert 0.2 < coarse_recall and coarse_recall + 0.2 < recall, (recall, coarse_recall)
    agree = np.mean(knn.predict(queries) == exact.predict(queries))
    assert agree > 0.8, agree
    flat = fit_knn_stream(TableChunks(path), sample_rows=4000, k=10)
    assert knn_recall(flat, TableChunks(path), queries, k=10) == 1.0


def test_streaming_probe_chooses_C_by_the_selection_metric() -> None:
    rng = np.random.default_rng(1)
    y = np.where(rng.random(1200) < 0.9, 0, 1)  # 90/10
    X = (rng.standard_normal((1200, 8)) + 0.8 * y[:, None]).astype(np.float32)
    Xtr, Xva, ytr, yva = X[:800], X[800:], y[:800], y[800:]
    Cs = [0.001, 0.1, 10.0]
    fits = {}
    for select_by in ("auto", "accuracy", "balanced_accuracy"):
        chunks = (ArrayChunks(Xtr, ytr, 200), ArrayChunks(Xva, yva, 200), ArrayChunks(X, y, 200))
        fits[select_by] = fit_probe_stream(*chunks, Cs, select_by=select_by, class_weight="balanced", min_steps=300)
    assert fits["auto"][0].select_by_ == "balanced_accuracy"  # 9:1 in train
    assert fits["accuracy"][0].select_by_ == "accuracy"
    assert fits["auto"][1] == fits["balanced_accuracy"][1]
    assert fits["accuracy"][1] != fits["balanced_accuracy"][1]  # the same probes, scored by another metric
    even = np.arange(len(ytr)) % 2
    assert fit_probe_stream(ArrayChunks(Xtr, even, 200), ArrayChunks(Xva, np.arange(400) % 2, 200),
                            ArrayChunks(X, np.arange(1200) % 2, 200), Cs, min_steps=300)[0].select_by_ == "accuracy"
