"""Metrics: top-k accuracy keeps the figures it always gave, class scores, confidence intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from headstart.heads.knn import KNNClassifier
from headstart.heads.metrics import class_scores, classification_metrics, mean_ci95, top_k_accuracy
from headstart.heads.registry import build_head
from tests.conftest import clusters


def _earlier_class_first(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray, k: int) -> float:
    """The hand-written rule the committed figures were made with (ties to the earlier class)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((classes[order] == y_true[:, None]).any(axis=1).mean())


def test_top_k_keeps_the_earlier_class_first_rule_on_knn_votes() -> None:
    X, y = clusters(n=1500, d=8, classes=12, seed=5)
    X += np.random.default_rng(5).standard_normal(X.shape).astype(np.float32) * 2  # many misses, many ties
    knn = KNNClassifier(k=10, weighting="uniform").fit(X[:1000], y[:1000])
    scores = knn.predict_proba(X[1000:])
    classes, y_test = knn.classes_, y[1000:]
    assert (scores == 0).sum(axis=1).min() >= 3  # in every row, several classes tie at 0: the rule decides
    for k in (1, 3, 5):
        assert top_k_accuracy(y_test, scores, classes, k) == _earlier_class_first(y_test, scores, classes, k)
    # the reason for the rule: scikit-learn's own tie rule gives another figure on the same scores
    assert top_k_accuracy(y_test, scores, classes, 5) != top_k_accuracy_score(y_test, scores, k=5, labels=classes)


def test_top_k_without_ties_is_scikit_learns_and_unseen_classes_are_misses() -> None:
    rng = np.random.default_rng(0)
    classes = np.array([f"c{i}" for i in range(8)])
    y_true = classes[rng.integers(0, 8, 400)]
    scores = rng.random((400, 8))
    assert top_k_accuracy(y_true, scores, classes, 5) == top_k_accuracy_score(y_true, scores, k=5, labels=classes)
    unseen = y_true.copy()
    unseen[:100] = "never_trained_on"
    expected = _earlier_class_first(unseen, scores, classes, 5)
    assert top_k_accuracy(unseen, scores, classes, 5) == pytest.approx(expected)
    assert expected < top_k_accuracy(y_true, scores, classes, 5)
    with pytest.raises(ValueError, match="0 < k < 8"):
        top_k_accuracy(y_true, scores, classes, 8)


def test_top5_is_reported_only_with_more_than_5_classes() -> None:
    X, y = clusters(n=600, d=8, classes=6, seed=1)
    head = build_head("ncm", {}).fit(X[:400], y[:400])
    scores = class_scores(head, X[400:])
    metrics = classification_metrics(y[400:], head.predict(X[400:]), scores, head.classes_)
    assert metrics["top5_accuracy"] == _earlier_class_first(y[400:], scores, head.classes_, 5)
    four = np.isin(y, ["c0", "c1", "c2", "c3"])
    head = build_head("ncm", {}).fit(X[:400][four[:400]], y[:400][four[:400]])
    assert "top5_accuracy" not in classification_metrics(
        y[400:][four[400:]], head.predict(X[400:][four[400:]]), class_scores(head, X[400:][four[400:]]), head.classes_
    )


def test_class_scores_of_a_head_without_predict_proba_are_the_softmax_of_its_decision() -> None:
    X, y = clusters(n=300, d=8, classes=3, seed=2)
    svm = build_head("svm", {"C": 1.0}).fit(X[:200], y[:200])
    assert not hasattr(svm, "predict_proba")
    decision = svm.decision_function(X[200:])
    expected = np.exp(decision) / np.exp(decision).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(class_scores(svm, X[200:]), expected, rtol=1e-12)
    binary = build_head("svm", {"C": 1.0}).fit(X[:200][y[:200] != "c2"], y[:200][y[:200] != "c2"])
    scores = class_scores(binary, X[200:])
    assert scores.shape == (100, 2)
    np.testing.assert_array_equal(scores[:, 1] > 0.5, binary.decision_function(X[200:]) > 0)


def test_mean_ci95_is_the_student_t_interval() -> None:
    ci = mean_ci95([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 degrees of freedom) x std / sqrt(n)
    assert ci == pytest.approx({"mean": 2.0, "std": 1.0, "ci95_low": 2.0 - half, "ci95_high": 2.0 + half, "n": 3})
    # a seeded head whose seeds agree (the linear SVM on digits): no spread, an empty interval, not NaN
    # (scipy.stats.t.interval gives NaN for a scale of 0, which is why the interval is written out)
    same = mean_ci95([1.0, 1.0, 1.0])
    assert same == {"mean": 1.0, "std": 0.0, "ci95_low": 1.0, "ci95_high": 1.0, "n": 3}
    assert mean_ci95([0.5]) == {"mean": 0.5, "std": 0.0, "ci95_low": 0.5, "ci95_high": 0.5, "n": 1}


def test_bootstrap_scores_equal_scikit_learns_on_every_resample() -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from headstart.heads.intervals import _balanced_accuracy, _macro_f1

    rng = np.random.default_rng(0)
    y_true = rng.choice(np.array(["a", "b", "c", "d"]), 60, p=[0.6, 0.3, 0.08, 0.02])
    y_pred = np.where(rng.random(60) < 0.7, y_true, rng.choice(np.array(["a", "b", "c", "e"]), 60))  # e: never true
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k, pairs = len(labels), codes[:60] * len(labels) + codes[60:]
    for _ in range(200):  # resamples that miss the rare classes, or hold a predicted class that is never true
        i = rng.integers(0, 60, 60)
        confusion = np.bincount(pairs[i], minlength=k * k).reshape(k, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = balanced_accuracy_score(y_true[i], y_pred[i])
        assert _balanced_accuracy(confusion) == pytest.approx(expected, abs=1e-12)
        assert _macro_f1(confusion) == pytest.approx(
            f1_score(y_true[i], y_pred[i], average="macro", zero_division=0), abs=1e-12
        )
