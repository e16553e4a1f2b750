"""Domain shift: four regimes per head on disjoint test data; shifted copies keep their originals' split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data import prepare_dataset
from headstart.heads.evaluate import SplitData
from headstart.heads.transfer import REGIMES, TransferError, check_disjoint, transfer_table
from headstart.report.transfer import transfer_markdown as markdown


def _domain(shift: float, seed: int) -> SplitData:
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])
    parts = []
    for n in (300, 60, 120):
        y = rng.integers(0, 3, n)
        X = centres[y] + rng.standard_normal((n, 2)) * 0.9
        X = X @ np.array([[np.cos(shift), -np.sin(shift)], [np.sin(shift), np.cos(shift)]])  # rotate the domain
        X = X + (8.0 * shift / max(shift, 1e-9) if shift else 0.0)  # and move it away from the source
        parts += [X.astype(np.float32), np.array([f"c{v}" for v in y])]
    return SplitData(*parts)


def test_four_regimes_per_head_and_adaptation_forgets() -> None:
    source, target = _domain(0.0, 0), _domain(1.2, 1)
    heads = [("logreg", "logreg", {"C": 1.0}), ("knn", "knn", {"k": 10})]
    rows = transfer_table(source, target, heads, adapt_steps=5)
    assert [(r["head"], r["regime"]) for r in rows] == [(h, r) for h in ("logreg", "knn") for r in REGIMES]
    by = {(r["head"], r["regime"]): r for r in rows}
    logreg_src, logreg_adapted = by[("logreg", "source only")], by[("logreg", "source -> target")]
    assert logreg_src["source_test"] > 0.85 and logreg_src["target_test"] < logreg_src["source_test"] - 0.2
    assert logreg_adapted["target_test"] > logreg_src["target_test"]
    assert logreg_adapted["source_test"] < logreg_src["source_test"]  # forgetting
    knn_src, knn_adapted = by[("knn", "source only")], by[("knn", "source -> target")]
    assert (
        knn_adapted["source_test"] > 0.85 and knn_adapted["target_test"] > knn_src["target_test"] + 0.3
    )  # adds, keeps
    text = markdown(rows, "digits", "digits_inverted", 5)
    assert "| logreg | digits, then 5 epoch(s) on digits_inverted |" in text and "forgets" in text


def test_test_images_may_not_be_trained_on() -> None:
    ok = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}
    check_disjoint(ok, {"train": ["e"], "val": [], "test": ["f"]})
    with pytest.raises(TransferError, match="1 image\\(s\\) of the target test split are also training images"):
        check_disjoint(ok, {"train": ["e"], "val": [], "test": ["a"]})


def test_different_labels_are_refused() -> None:
    source, target = _domain(0.0, 0), _domain(0.0, 1)
    target.y_train = np.array([y.replace("c2", "zebra") for y in target.y_train])
    with pytest.raises(TransferError, match="same labels"):
        transfer_table(source, target, [("knn", "knn", {})])


def test_a_shifted_copy_keeps_each_image_in_its_originals_split(image_folder: Path) -> None:
    plain = prepare_dataset(str(image_folder), seed=3).set_index("path")
    shifted = prepare_dataset(str(image_folder), seed=3, shift="rotate:90").set_index("path")
    assert not set(plain["id"]) & set(shifted["id"])
    assert (plain["split"] == shifted.loc[plain.index, "split"]).all()
