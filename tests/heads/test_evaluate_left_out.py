"""Classes without a train, val or test image are left out of the protocol (in memory and streamed) and named;
fewer than two evaluable classes stop it in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headstart.data.tables import ShardedEmbeddingWriter, load_embeddings
from headstart.heads._checks import TrainingDataError
from headstart.heads.evaluate import SplitData, evaluate_head, left_out_text
from headstart.report.tables import render_markdown, rows_from_results
from headstart.workflow.fit import fit_table
from tests.conftest import clusters


def _table(path: Path, extra: list[tuple[str, str]], *, n: int = 600, classes: int = 4) -> Path:
    """A table of ``classes`` well-split classes and ``extra`` rows ``(label, split)`` of small classes."""
    X, y = clusters(n=n, d=8, classes=classes, seed=0)
    splits = np.array(["train", "train", "val", "test", "train"])[np.arange(n) % 5].tolist()
    labels = [str(v) for v in y] + [label for label, _ in extra]
    splits += [split for _, split in extra]
    X = np.concatenate([X, np.random.default_rng(1).standard_normal((len(extra), 8)).astype(np.float32)])
    with ShardedEmbeddingWriter(path, 8, {"node": "x", "dataset": {"name": "small"}}, rows_per_shard=250) as writer:
        writer.write([f"{i:08x}" for i in range(len(X))], labels, splits, [None] * len(X), X)
    return path


SMALL = [("one", "train"), ("two", "train"), ("two", "test"), ("notrain", "test"), ("notrain", "val")]
LEFT_OUT = {"notrain": "train", "one": "test", "two": "val"}


def test_classes_without_an_image_in_a_split_are_left_out_and_named(tmp_path: Path) -> None:
    table = load_embeddings(_table(tmp_path / "t.parquet", SMALL))
    evaluation = evaluate_head("knn", {"k": [1, 5]}, SplitData.from_table(table), seeds=2, few_shot=(1, 2, "all"))
    assert evaluation.left_out == LEFT_OUT
    assert evaluation.classes == ["c0", "c1", "c2", "c3"] and set(evaluation.y_true) <= set(evaluation.classes)
    assert list(evaluation.model.classes_) == ["c0", "c1", "c2", "c3"]  # the saved head knows the evaluated ones
    assert [r["train_images"] for r in evaluation.few_shot if r["n"] == 2] == [8, 8]  # few-shot still works
    assert left_out_text(LEFT_OUT) == (
        "class 'notrain' (no train image), class 'one' (no test image), class 'two' (no val image)"
    )


def test_the_streamed_protocol_leaves_out_the_same_classes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _table(tmp_path / "t.parquet", SMALL)
    params = {"index": "ivfpq", "k": [1, 5]}
    memory = evaluate_head("knn", params, SplitData.from_table(load_embeddings(path)), seeds=1, few_shot=(1, "all"))
    with caplog.at_level("WARNING", logger="headstart.heads.evaluate"):
        streamed, record = fit_table(path, "knn", params, tmp_path / "model", seeds=1, few_shot=(1, "all"))
    assert streamed.left_out == memory.left_out == record["left_out"] == LEFT_OUT
    assert np.array_equal(streamed.y_pred, memory.y_pred)
    assert [r["accuracy"] for r in streamed.few_shot] == [r["accuracy"] for r in memory.few_shot]
    assert "left out of the evaluation: class 'notrain' (no train image)" in caplog.text
    predictions = (tmp_path / "model" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + len(memory.y_true)  # test rows of the evaluated classes only


def test_in_memory_fit_writes_predictions_of_the_evaluated_classes_and_the_report_names_the_others(
    tmp_path: Path,
) -> None:
    path = _table(tmp_path / "t.parquet", SMALL)
    evaluation, record = fit_table(path, "ncm", {}, tmp_path / "model", seeds=1, few_shot=(1,))
    rows = (tmp_path / "model" / "predictions.csv").read_text().splitlines()[1:]
    assert len(rows) == 120 and {r.split(",")[1] for r in rows} == {"c0", "c1", "c2", "c3"}
    results = [{"dataset": "small", "backbone": "b", "head": "ncm", "layers": {"x": json.loads(json.dumps(record))}}]
    text = render_markdown(rows_from_results(results))
    assert "Left out of the evaluation (no image in a split the protocol needs): class 'notrain' (no train " in text


def test_without_a_left_out_class_the_record_is_unchanged(tmp_path: Path) -> None:
    _, record = fit_table(_table(tmp_path / "t.parquet", []), "ncm", {}, tmp_path / "m", seeds=1, few_shot=())
    assert "left_out" not in record


def test_fewer_than_two_evaluable_classes_stop_in_one_line() -> None:
    X = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    y = np.array(["a", "b", "c", "a", "a", "a", "b"])
    data = SplitData(X[:3], y[:3], X[3:5], y[3:5], X[5:], y[5:], source="t.parquet")  # b: no val, c: no test
    with pytest.raises(TrainingDataError, match=r"t.parquet: 1 of 3 classes can be evaluated.*"
                       r"class 'b' \(no val image\), class 'c' \(no test image\); add images") as err:
        evaluate_head("ncm", {}, data, seeds=1, few_shot=())
    assert "\n" not in str(err.value)
    no_test = SplitData(X[:3], y[:3], X[3:5], y[3:5], X[:0], y[:0], source="t.parquet")
    with pytest.raises(TrainingDataError, match="t.parquet has no test images.*with a test fraction"):
        evaluate_head("ncm", {}, no_test, seeds=1, few_shot=())
