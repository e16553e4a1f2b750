"""The evaluation protocol: few-shot subsets, seeds, metrics; saved heads refuse other embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data.tables import EmbeddingWriter, load_embeddings
from headstart.heads import evaluate as evaluate_module
from headstart.heads.evaluate import SplitData, evaluate_head
from headstart.heads.persist import ProvenanceMismatch, check_provenance, load_head
from headstart.workflow.fit import fit_table
from tests.conftest import clusters


def _split(seed: int = 0) -> SplitData:
    X, y = clusters(n=700, d=16, classes=4, seed=seed)
    return SplitData(X[:400], y[:400], X[400:500], y[400:500], X[500:], y[500:])


def test_few_shot_subsets_hold_n_per_class_and_are_shared_by_every_head(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[tuple[int, int, tuple[int, ...]]]] = {}
    real = evaluate_module.few_shot_indices

    def spy(labels, n, seed):  # noqa: ANN001, ANN202
        idx = real(labels, n, seed)
        seen.setdefault(current, []).append((n, seed, tuple(idx)))
        counts = {c: int((np.asarray(labels)[idx] == c).sum()) for c in set(labels)}
        assert set(counts.values()) == {n}, counts
        return idx

    monkeypatch.setattr(evaluate_module, "few_shot_indices", spy)
    data = _split()
    for current in ("knn", "logreg", "svm", "ncm"):
        evaluation = evaluate_head(
            current, {"C": 1.0} if current in ("logreg", "svm") else {}, data, seeds=3, few_shot=(1, 5, "all")
        )
        runs = evaluation.few_shot
        assert [r["train_images"] for r in runs if r["n"] == 5] == [20, 20, 20]
        assert {r["train_images"] for r in runs if r["n"] == "all"} == {400}
    assert seen["knn"] == seen["logreg"] == seen["svm"] == seen["ncm"]
    assert len(seen["knn"]) == 6 and len({s[2] for s in seen["knn"] if s[0] == 5}) == 3  # 3 seeds, 3 subsets


@pytest.fixture
def seeded_head():  # a head whose fit depends on its seed (none of the built-ins does)
    from sklearn.linear_model import SGDClassifier

    from headstart.heads.registry import _HEADS, HeadType, register_head

    def build(p, seed):  # type: ignore[no-untyped-def]
        return SGDClassifier(max_iter=5, tol=None, random_state=seed)

    register_head(HeadType("sgd_test", "seeded SGD", {}, build, randomized=True))
    yield "sgd_test"
    del _HEADS["sgd_test"]


def test_seeded_heads_run_every_seed_deterministic_ones_once(seeded_head: str) -> None:
    data = _split(1)
    seeded = evaluate_head(seeded_head, {}, data, seeds=3, few_shot=())
    knn = evaluate_head("knn", {}, data, seeds=3, few_shot=())
    svm = evaluate_head("svm", {"C": 1.0}, data, seeds=3, few_shot=())
    assert len(seeded.per_seed) == 3 and len(knn.per_seed) == 1 and len(svm.per_seed) == 1
    ci = seeded.intervals["accuracy"]
    assert ci["n"] == 3 and ci["ci95_low"] <= seeded.metrics["accuracy"] <= ci["ci95_high"]
    assert {"accuracy", "balanced_accuracy", "macro_f1", "fit_seconds", "predict_ms_per_image"} <= set(knn.metrics)
    assert "top5_accuracy" not in knn.metrics  # 4 classes: top-5 would always be 1
    assert sum(sum(row) for row in knn.confusion) == len(data.y_test)
    assert set(knn.per_class) == {"c0", "c1", "c2", "c3"}


def test_the_linear_svm_predicts_the_same_whatever_its_seed() -> None:
    from headstart.heads.registry import build_head

    data = _split(2)
    predictions = [
        build_head("svm", {"C": c, "kernel": "linear", "max_iter": 5000}, seed).fit(data.X_train, data.y_train)
        .predict(data.X_test)
        for c in (0.01, 1.0)
        for seed in (0, 1, 2)
    ]  # fmt: skip
    assert all((p == predictions[0]).all() for p in predictions[:3])
    assert all((p == predictions[3]).all() for p in predictions[3:])


def _table(path: Path, node: str, seed: int = 0) -> Path:
    X, y = clusters(n=300, d=8, classes=3, seed=seed)
    splits = ["train"] * 180 + ["val"] * 40 + ["test"] * 80
    provenance = {
        "backbone": "mobilenet_v2",
        "weights": "W",
        "weights_sha256": "abc",
        "node": node,
        "pooling": "avg",
        "precision": "fp32",
        "preprocessing": {"crop_size": 64},
    }
    with EmbeddingWriter(path, 8, provenance) as writer:
        writer.write([f"{i:04d}" for i in range(300)], list(y), splits, [None] * 300, X)
    return path


def test_fit_table_saves_a_head_that_refuses_other_embeddings(tmp_path: Path) -> None:
    table = _table(tmp_path / "f13.parquet", "features.13")
    evaluation, record = fit_table(table, "logreg", {"C": [0.01, 1.0]}, tmp_path / "model", seeds=1, few_shot=(2,))
    bundle = load_head(tmp_path / "model")
    assert bundle.head == "logreg" and bundle.provenance["node"] == "features.13"
    assert record["selection"] and (tmp_path / "model" / "predictions.csv").exists()
    bundle.check(load_embeddings(table).provenance, "same table")  # same space: fine
    other = load_embeddings(_table(tmp_path / "flatten.parquet", "flatten")).provenance
    with pytest.raises(
        ProvenanceMismatch,
        match=r"flatten.parquet has embeddings of .*node flatten.*but the head "
        r".*model.json was fitted on .*node features.13.*differ in: node",
    ):
        bundle.check(other, str(tmp_path / "flatten.parquet"))
    with pytest.raises(ProvenanceMismatch, match="differ in: weights_sha256"):
        check_provenance(bundle.provenance, {**bundle.provenance, "weights_sha256": "def"})


@pytest.mark.parametrize("head", ["svm", "logreg"])
def test_fits_in_worker_processes_give_the_same_results(head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Grid points and few-shot runs in worker processes: the same scores and few-shot points as one by one
    (liblinear's global random generator is why these are processes, never threads)."""
    from sklearn.datasets import load_digits

    from headstart.heads import parallel

    X, y = load_digits(return_X_y=True)
    X, y = X.astype(np.float32)[:600], y.astype(str)[:600]
    data = SplitData(X[:300], y[:300], X[300:400], y[300:400], X[400:], y[400:])
    params = {"C": [0.001, 0.01, 0.1]}
    runs = {}
    for jobs in (1, 2):
        monkeypatch.setattr(parallel, "MIN_VALUES", 0)
        monkeypatch.setattr(parallel, "_cores", lambda jobs=jobs: jobs)
        runs[jobs] = evaluate_head(head, params, data, seeds=2, few_shot=(1, 5, "all"))
    assert parallel.workers(10, X) == 2
    assert runs[1].selection.scores == runs[2].selection.scores
    assert runs[1].few_shot == runs[2].few_shot
    assert np.array_equal(runs[1].y_pred, runs[2].y_pred)
