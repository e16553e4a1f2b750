"""Seeded stratified splits and few-shot subsets."""

from __future__ import annotations

import numpy as np

from headstart.data.splits import assign_splits, few_shot_indices, stratified_limit


def _ids(n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def test_split_is_stratified_and_exact_per_class() -> None:
    ids = _ids(300)
    labels = [str(i % 3) for i in range(300)]
    splits = assign_splits(ids, labels, [None] * 300, val=0.2, test=0.3, seed=0)
    for c in "012":
        mine = splits[np.asarray(labels) == c]
        assert (mine == "test").sum() == 30 and (mine == "val").sum() == 20 and (mine == "train").sum() == 50


def test_adding_images_moves_only_few_existing_ones() -> None:
    ids = _ids(500)
    labels = ["a"] * 500
    before = assign_splits(ids, labels, [None] * 500, val=0.15, test=0.3, seed=3)
    more = ids + _ids(20, "new")
    after = assign_splits(more, labels + ["a"] * 20, [None] * 520, val=0.15, test=0.3, seed=3)
    moved = (before != after[:500]).sum()
    assert moved <= 20, moved


def test_copies_of_one_image_share_a_split() -> None:
    ids = ["dup"] * 5 + _ids(100)
    labels = ["a"] * 105
    splits = assign_splits(ids, labels, [None] * 105, val=0.2, test=0.2, seed=0)
    assert len(set(splits[:5])) == 1


def test_a_tiny_class_keeps_a_training_image() -> None:
    splits = assign_splits(["x", "y"], ["a", "a"], [None, None], val=0.4, test=0.4, seed=0)
    assert "train" in splits


def test_few_shot_has_exactly_n_per_class_is_seeded_and_nested() -> None:
    labels = np.array([str(i % 4) for i in range(200)])
    five = few_shot_indices(labels, 5, seed=7)
    assert len(five) == 20 and all((labels[five] == c).sum() == 5 for c in "0123")
    np.testing.assert_array_equal(five, few_shot_indices(labels, 5, seed=7))
    assert set(few_shot_indices(labels, 2, seed=7)) <= set(five) <= set(few_shot_indices(labels, 10, seed=7))
    assert set(five) != set(few_shot_indices(labels, 5, seed=8))


def test_stratified_limit() -> None:
    labels = ["a"] * 90 + ["b"] * 10
    keep = stratified_limit(_ids(100), labels, 20, seed=0)
    assert len(keep) == 20 and sum(labels[i] == "b" for i in keep) == 2
