"""The fit protocol on a table read chunk by chunk: `logreg_stream` and `knn` with `index: ivfpq` as heads of the
fit stage and `headstart fit`, never loading the table whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import headstart.data.tables as tables
from headstart.data.tables import ShardedEmbeddingWriter, load_embeddings
from headstart.heads.evaluate import SplitData, evaluate_head
from headstart.heads.persist import load_head
from headstart.heads.registry import HeadError, get_head
from headstart.workflow.fit import fit_table


def _synthetic(n: int, dim: int = 16, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 0.8
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


def _table(path: Path, X: np.ndarray, y: np.ndarray, rows_per_shard: int, labelled: bool = True) -> Path:
    ids = [f"{i:08x}" for i in range(len(X))]
    splits = np.array(["train", "train", "val", "test", "train"])[np.arange(len(X)) % 5].tolist()
    labels = [str(v) for v in y] if labelled else [None] * len(X)
    provenance = {"node": "x", "dataset": {"name": "synthetic"}}
    with ShardedEmbeddingWriter(path, X.shape[1], provenance, rows_per_shard=rows_per_shard,
                                labelled=labelled) as writer:
        writer.write(ids, labels, splits, [None] * len(X), X)
    return path


@pytest.fixture
def no_whole_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a table whole fails: a streaming head must not need it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the table was loaded whole")

    monkeypatch.setattr(tables, "load_embeddings", refuse)
    monkeypatch.setattr("headstart.workflow.fit.load_embeddings", refuse)


def test_which_heads_stream() -> None:
    assert get_head("logreg_stream").streaming({})
    assert get_head("knn").streaming({"index": "ivfpq"})
    assert not get_head("knn").streaming({}) and not get_head("logreg").streaming({})


def test_ivfpq_knn_streamed_equals_the_in_memory_protocol(tmp_path: Path) -> None:
    """Below the index's training sample, the streamed protocol sees the same rows in the same order: the
    same choice of k, test predictions, metrics and few-shot points as in memory."""
    X, y = _synthetic(3000)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=1200)  # three shards, several row groups
    assert path.is_dir()
    params = {"index": "ivfpq", "k": [5, 20]}
    table = load_embeddings(path)
    memory = evaluate_head("knn", params, SplitData.from_table(table), seeds=2, few_shot=(1, 5, "all"))
    streamed, record = fit_table(path, "knn", params, tmp_path / "model", seeds=2, few_shot=(1, 5, "all"))
    assert streamed.params == memory.params and streamed.selection.scores == memory.selection.scores
    assert np.array_equal(streamed.y_pred, memory.y_pred) and np.array_equal(streamed.y_true, memory.y_true)
    quality = [k for k in memory.metrics if not k.endswith(("seconds", "per_image"))]
    assert {k: streamed.metrics[k] for k in quality} == {k: memory.metrics[k] for k in quality}
    assert [r["accuracy"] for r in streamed.few_shot] == [r["accuracy"] for r in memory.few_shot]
    assert np.allclose(streamed.test_scores, memory.test_scores, atol=1e-6)
    assert record["few_shot"][-1]["n"] == "all"


def test_streaming_probe_is_a_head_of_fit_and_never_loads_the_table(tmp_path: Path, no_whole_table: None) -> None:
    X, y = _synthetic(2500)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=1000)
    model_dir = tmp_path / "model"
    evaluation, record = fit_table(
        path, "logreg_stream", {"C": [0.01, 1.0], "min_steps": 200}, model_dir, seeds=2, few_shot=(2, "all")
    )
    assert evaluation.randomized and len(evaluation.per_seed) == 2  # the seed orders the mini-batches
    assert [p for p, _ in evaluation.selection.scores] == [{"C": 0.01}, {"C": 1.0}]
    assert evaluation.metrics["accuracy"] > 0.8
    assert [r["n"] for r in evaluation.few_shot] == [2, 2, "all", "all"]  # two seeds each
    assert all(r["train_images"] == 8 for r in evaluation.few_shot if r["n"] == 2)  # 2 per class, 4 classes
    assert record["provenance"]["dataset"] == {"name": "synthetic"}
    predictions = (model_dir / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "id,actual,predicted,probability" and len(predictions) == 1 + 500  # every test row
    assert json.loads((model_dir / "metrics.json").read_text())["accuracy"] == round(evaluation.metrics["accuracy"], 6)
    head = load_head(model_dir)  # a trusted type: loads without pickle and predicts
    test = np.arange(len(X)) % 5 == 3
    assert np.mean(head.estimator.predict(X[test]) == y[test].astype(str)) == pytest.approx(
        evaluation.metrics["accuracy"], abs=0.02
    )


def test_streaming_probe_is_close_to_the_lbfgs_head_on_the_same_table(tmp_path: Path) -> None:
    X, y = _synthetic(3000, dim=24, classes=5, seed=3)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=5000)
    lbfgs = evaluate_head("logreg", {"C": [0.01, 0.1, 1.0]}, SplitData.from_table(load_embeddings(path)),
                          seeds=1, few_shot=())
    streamed, _ = fit_table(path, "logreg_stream", {"C": [0.01, 0.1, 1.0]}, tmp_path / "m", seeds=1, few_shot=())
    assert abs(streamed.metrics["accuracy"] - lbfgs.metrics["accuracy"]) <= 0.01


def test_an_unlabelled_table_is_refused_in_one_line(tmp_path: Path) -> None:
    X, y = _synthetic(300)
    path = _table(tmp_path / "t.parquet", X, y, rows_per_shard=5000, labelled=False)
    with pytest.raises(HeadError, match="no labels .*headstart neighbours"):
        fit_table(path, "logreg_stream", {}, tmp_path / "m", seeds=1, few_shot=())
    assert not (tmp_path / "m").exists()
