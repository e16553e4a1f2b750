"""Selection on val: the sweep picks the C with the best val score; fast paths equal slow paths."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from headstart.heads.registry import build_head, resolve_params
from headstart.heads.linear import sweep_logreg_C
from headstart.heads.selection import select
from tests.conftest import clusters


def _data(seed: int = 0):  # noqa: ANN202
    X, y = clusters(n=900, d=30, classes=5, seed=seed)
    X += np.random.default_rng(seed).standard_normal(X.shape).astype(np.float32) * 3  # make C matter
    return X[:500], y[:500], X[500:700], y[500:700]


def test_logreg_sweep_picks_the_C_with_the_best_val_score() -> None:
    X_tr, y_tr, X_val, y_val = _data()
    Cs = list(10.0 ** np.linspace(-4, 2, 13))
    selection = select("logreg", {"max_iter": 1000, "tol": 1e-4}, {"C": Cs}, X_tr, y_tr, X_val, y_val)
    # independent, cold fits of every C on standardised features
    scaler = StandardScaler().fit(X_tr)
    cold = [
        LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(X_tr), y_tr).score(scaler.transform(X_val), y_val)
        for C in Cs
    ]
    scores = [s for _, s in selection.scores]
    np.testing.assert_allclose(scores, cold, atol=0.011)  # warm starts end at (nearly) the same optimum
    assert scores[Cs.index(selection.best["C"])] == max(scores) == selection.best_score
    assert len(set(scores)) > 2  # the grid really matters on this data


def test_warm_and_cold_sweeps_agree() -> None:
    X_tr, y_tr, X_val, y_val = _data(1)
    Cs = list(10.0 ** np.linspace(-3, 1, 9))
    warm = sweep_logreg_C(X_tr, y_tr, X_val, y_val, Cs, warm_start=True)
    cold = sweep_logreg_C(X_tr, y_tr, X_val, y_val, Cs, warm_start=False)
    np.testing.assert_allclose(warm, cold, atol=0.011)


def test_knn_k_sweep_fast_path_equals_refitting() -> None:
    X_tr, y_tr, X_val, y_val = _data(2)
    fixed, grid = resolve_params("knn", {"k": [1, 5, 20, 50]})
    fast = select("knn", fixed, grid, X_tr, y_tr, X_val, y_val)
    slow = [
        float(np.mean(build_head("knn", {**fixed, "k": k}).fit(X_tr, y_tr).predict(X_val) == y_val)) for k in grid["k"]
    ]
    assert [s for _, s in fast.scores] == slow


def test_svm_grid_over_two_parameters() -> None:
    X_tr, y_tr, X_val, y_val = _data(3)
    fixed, grid = resolve_params("svm", {"kernel": "rbf", "C": [0.1, 10], "gamma": ["scale", 0.001]})
    selection = select("svm", fixed, grid, X_tr, y_tr, X_val, y_val)
    tried = [(point["C"], point["gamma"]) for point, _ in selection.scores]
    assert tried == [(0.1, "scale"), (0.1, 0.001), (10, "scale"), (10, 0.001)]
    best = tried.index((selection.best["C"], selection.best["gamma"]))
    assert selection.scores[best][1] == selection.best_score == max(s for _, s in selection.scores)
    assert selection.best["kernel"] == "rbf"  # the fixed parameter travels with the chosen point


def test_ties_in_val_accuracy_go_to_the_lower_val_log_loss() -> None:
    X_tr, y_tr, X_val, y_val = _data(4)
    X_val, y_val = X_val[:12], y_val[:12]  # a tiny val split: many C values tie
    Cs = list(10.0 ** np.linspace(-3, 2, 11))
    accuracies, losses = sweep_logreg_C(X_tr, y_tr, X_val, y_val, Cs, with_loss=True)
    selection = select("logreg", {"max_iter": 1000, "tol": 1e-4}, {"C": Cs}, X_tr, y_tr, X_val, y_val)
    tied = [i for i, a in enumerate(accuracies) if a == max(accuracies)]
    assert len(tied) > 1
    assert Cs.index(selection.best["C"]) == min(tied, key=lambda i: losses[i])
