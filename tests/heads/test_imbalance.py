"""Class weights and the val metric of grid choices on imbalanced data."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.heads.registry import HeadError, build_head, check_params, resolve_params
from headstart.heads.scoring import resolve_select_by, val_score
from headstart.heads.selection import select


def _ninety_ten(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussians, 90% of the images in class 0."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    X = rng.normal(size=(n, 5)) + 1.2 * y[:, None] * np.array([1.0, 0.5, 0, 0, 0])
    return X.astype(np.float32), y


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_balanced_weights_move_the_boundary_towards_the_majority(head):
    X, y = _ninety_ten(0)
    fitted = {}
    for weight in ("none", "balanced"):
        fitted[weight] = build_head(head, {"C": 1.0, "class_weight": weight}).fit(X, y)
    clf_none, clf_bal = (fitted[w].named_steps["clf"] for w in ("none", "balanced"))
    # classes_[1] is the rare class: its bias grows (the boundary moves into the majority class)
    assert clf_bal.intercept_[0] > clf_none.intercept_[0] + 0.5
    assert (fitted["balanced"].predict(X) == 1).sum() > 2 * (fitted["none"].predict(X) == 1).sum()


def test_knn_balanced_votes_weigh_classes_inversely_to_their_counts():
    X, y = _ninety_ten(1)
    plain = build_head("knn", {"k": 50, "weighting": "uniform", "class_weight": "none"}).fit(X, y)
    balanced = build_head("knn", {"k": 50, "weighting": "uniform", "class_weight": "balanced"}).fit(X, y)
    p_plain, p_bal = plain.predict_proba(X)[:, 1], balanced.predict_proba(X)[:, 1]
    assert np.all(p_bal >= p_plain - 1e-12) and (p_bal > p_plain).mean() > 0.5
    assert (balanced.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_select_by_picks_different_grid_points_when_the_metrics_disagree():
    X, y = _ninety_ten(2, n=600)
    Xv, yv = _ninety_ten(3, n=600)
    fixed, grid = resolve_params("knn", {"k": [1, 101], "weighting": "uniform", "class_weight": "none"})
    chosen = {}
    for metric in ("accuracy", "balanced_accuracy"):
        selection = select("knn", {**fixed, "select_by": metric}, grid, X, y, Xv, yv)
        chosen[metric] = selection.best["k"]
        assert selection.metric == metric and selection.best["select_by"] == metric
    # k=101 always votes for the majority: the best accuracy, a balanced accuracy of 0.5
    assert chosen == {"accuracy": 101, "balanced_accuracy": 1}


def test_auto_resolves_by_the_train_class_counts_and_is_recorded():
    X, y = _ninety_ten(4)
    fixed, grid = resolve_params("logreg", {"C": [0.01, 1.0]})
    assert fixed["select_by"] == "auto" and fixed["class_weight"] == "balanced"
    selection = select("logreg", fixed, grid, X, y, X, y)
    assert selection.metric == "balanced_accuracy" == selection.best["select_by"]
    assert resolve_select_by("auto", np.repeat([0, 1, 2], [15, 10, 12])) == "accuracy"
    assert resolve_select_by("auto", np.repeat([0, 1, 2], [16, 10, 12])) == "balanced_accuracy"


def test_log_loss_selection_scores_are_negated_losses():
    y = np.array([0, 1, 1])
    good, bad = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]]), np.array([[0.5, 0.5]] * 3)
    assert val_score("log_loss", y, y, good, [0, 1]) > val_score("log_loss", y, y, bad, [0, 1])


@pytest.mark.parametrize(
    ("head", "params", "words"),
    [
        ("logreg", {"class_weight": "auto"}, "heads.logreg.class_weight must be one of 'none', 'balanced'"),
        ("knn", {"select_by": "f1"}, "heads.knn.select_by must be one of 'auto'"),
        ("svm", {"select_by": ["accuracy", "macro_f1"]}, "heads.svm.select_by must be one of"),
    ],
)
def test_bad_imbalance_settings_are_one_line_errors(head, params, words):
    with pytest.raises(HeadError, match=words.replace(".", r"\.")):
        check_params(head, params)


def test_streaming_probe_class_weights_move_its_boundary_as_logreg_does():
    from headstart.heads.stream import StreamingLinearProbe

    X, y = _ninety_ten(5)
    plain = StreamingLinearProbe(C=1.0, min_steps=400).fit(X, y)
    balanced = StreamingLinearProbe(C=1.0, min_steps=400, class_weight="balanced").fit(X, y)
    margin = lambda probe: probe.intercept_[1] - probe.intercept_[0]  # noqa: E731 - the rare class's bias
    assert margin(balanced) > margin(plain) + 0.5
    assert (balanced.predict(X) == 1).sum() > 2 * (plain.predict(X) == 1).sum()
