"""The head contract: every registered head passes the same behaviour tests.

The heads are taken from the registry when the tests are collected, so a newly registered head is covered
without touching this file. Each is built with its registered defaults (the middle value of a default grid).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from headstart.heads.metrics import class_scores
from headstart.heads.registry import build_head, list_heads, resolve_params
from tests.conftest import clusters

HEADS = sorted(list_heads())
LABELS = np.array(["cat", "dog", "eel", "fox"])  # strings, deliberately not the sorted order of their codes


def _head(name: str, seed: int = 0) -> Any:
    fixed, grid = resolve_params(name, {})
    middle = {key: values[len(values) // 2] for key, values in grid.items()}
    return build_head(name, {**fixed, **middle}, seed)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = clusters(n=400, d=12, classes=len(LABELS), seed=seed)
    named = LABELS[::-1][np.array([int(v[1:]) for v in y])]  # c0 -> fox, c1 -> eel, ...
    return X[:300], named[:300], X[300:], named[300:]


def test_the_registry_has_heads() -> None:
    assert {"knn", "logreg", "svm", "ncm"} <= set(HEADS)


@pytest.mark.parametrize("name", HEADS)
def test_fit_predict_and_class_scores_have_the_documented_shapes(name: str) -> None:
    X_train, y_train, X_test, y_test = _data()
    head = _head(name).fit(X_train, y_train)
    np.testing.assert_array_equal(head.classes_, np.sort(LABELS))
    predicted = head.predict(X_test)
    assert predicted.shape == (len(X_test),) and set(predicted) <= set(LABELS)
    assert isinstance(predicted[0], str)  # the labels come back, not their codes
    assert np.mean(predicted == y_test) > 0.8  # well-separated clusters: a head that learned nothing fails here
    scores = class_scores(head, X_test)  # what the evaluation and `predict` use: predict_proba where it exists
    assert scores.shape == (len(X_test), len(LABELS))
    assert (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0)
    np.testing.assert_array_equal(head.classes_[np.argmax(scores, axis=1)], predicted)
    if hasattr(head, "predict_proba"):
        np.testing.assert_allclose(head.predict_proba(X_test), scores)
    else:  # an uncalibrated head (linear SVM) must at least rank the classes
        assert head.decision_function(X_test).shape == (len(X_test), len(LABELS))


@pytest.mark.parametrize("name", HEADS)
def test_two_classes_give_two_columns(name: str) -> None:
    X_train, y_train, X_test, _ = _data(1)
    keep = np.isin(y_train, ["dog", "fox"])
    head = _head(name).fit(X_train[keep], y_train[keep])
    np.testing.assert_array_equal(head.classes_, ["dog", "fox"])
    assert class_scores(head, X_test).shape == (len(X_test), 2)
    assert set(head.predict(X_test)) <= {"dog", "fox"}


@pytest.mark.parametrize("name", HEADS)
def test_the_same_seed_gives_the_same_head(name: str) -> None:
    X_train, y_train, X_test, _ = _data(2)
    a = _head(name, seed=7).fit(X_train, y_train)
    b = _head(name, seed=7).fit(X_train, y_train)
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))
    np.testing.assert_array_equal(class_scores(a, X_test), class_scores(b, X_test))


@pytest.mark.parametrize("name", HEADS)
def test_a_pickled_head_predicts_the_same(name: str) -> None:
    X_train, y_train, X_test, _ = _data(3)
    head = _head(name).fit(X_train, y_train)
    again = pickle.loads(pickle.dumps(head))
    np.testing.assert_array_equal(again.predict(X_test), head.predict(X_test))
    np.testing.assert_array_equal(class_scores(again, X_test), class_scores(head, X_test))


@pytest.mark.parametrize("name", HEADS)
def test_input_of_another_width_is_refused_naming_both_widths(name: str) -> None:
    X_train, y_train, X_test, _ = _data(4)
    head = _head(name).fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"X has 5 features, but \w+ is expecting 12 features"):
        head.predict(X_test[:, :5])


@pytest.mark.parametrize("name", HEADS)
def test_a_training_set_of_one_class_is_refused(name: str) -> None:
    X_train, _, _, _ = _data(5)
    with pytest.raises(ValueError, match=r"(one class|1 class|only one|at least (2|two) classes)"):
        _head(name).fit(X_train, np.full(len(X_train), "cat"))
