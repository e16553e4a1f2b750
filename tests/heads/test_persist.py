"""A saved head is skops data: only trusted types go in and come out, and the same head gives the same bytes."""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from headstart.heads import persist
from headstart.heads.persist import TRUSTED_TYPES, UnsafeModelError, load_head, save_head, trust_type
from tests.conftest import clusters

HEAD = {"head": "mine", "name": "mine", "params": {}, "classes": ["0", "1"], "provenance": {"dim": 4}}


class _Mine(ClassifierMixin, BaseEstimator):
    """A head registered outside headstart."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Mine:
        self.classes_, self.mean_ = np.unique(y), X.mean(axis=0)
        return self


@pytest.fixture
def restore_trusted() -> Iterator[None]:
    before = set(TRUSTED_TYPES)
    yield
    TRUSTED_TYPES.clear()
    TRUSTED_TYPES.update(before)


def test_every_trusted_type_is_a_class_headstart_has() -> None:
    for name in TRUSTED_TYPES:
        module, _, qualname = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), qualname), type), name


def test_an_untrusted_estimator_is_refused_when_saved_and_loads_once_trusted(
    tmp_path: Path, restore_trusted: None
) -> None:
    X, y = clusters(n=40, d=4, classes=2, seed=0)
    mine = _Mine().fit(X, y)
    with pytest.raises(UnsafeModelError, match=r"_Mine not among the trusted types .*trust_type"):
        save_head(tmp_path / "model", mine, **HEAD)
    assert not (tmp_path / "model" / "model.skops").exists()

    trust_type(_Mine)
    save_head(tmp_path / "model", mine, **HEAD)
    loaded = load_head(tmp_path / "model").estimator
    assert isinstance(loaded, _Mine) and np.array_equal(loaded.mean_, mine.mean_)


def test_the_archive_names_its_entries_in_order_and_carries_no_time(tmp_path: Path) -> None:
    from headstart.heads.knn import KNNClassifier

    X, y = clusters(n=60, d=4, classes=2, seed=0)
    knn = KNNClassifier(k=3).fit(X, y)
    save_head(tmp_path / "a", knn, **HEAD)
    save_head(tmp_path / "b", KNNClassifier(k=3).fit(X.copy(), y.copy()), **HEAD)  # other objects, other id()s
    assert (tmp_path / "a" / "model.skops").read_bytes() == (tmp_path / "b" / "model.skops").read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "model.skops") as archive:
        names = archive.namelist()
        assert {info.date_time for info in archive.infolist()} == {persist._ZIP_TIME}
    assert names == ["schema.json"] + [f"{i}.npy" for i in range(len(names) - 1)]
    assert np.array_equal(load_head(tmp_path / "a").estimator.predict(X), knn.predict(X))
