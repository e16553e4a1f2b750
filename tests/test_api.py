"""The notebook API on a tiny image folder: Embeddings and Head round trips (test_docs.py runs the README example)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import headstart


@pytest.fixture
def photos(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "photos").symlink_to(image_folder)
    monkeypatch.chdir(work)
    return work


def test_embed_fit_predict_save_with_a_tiny_random_backbone(photos: Path, tmp_path: Path) -> None:
    small = {"weights": None, "layer": "features.6", "image_size": 32, "batch_size": 8, "num_workers": 0}
    emb = headstart.embed("photos/", backbone="mobilenet_v2", **small)
    assert isinstance(emb, headstart.Embeddings) and len(emb) == 36
    assert emb.X.shape == (36, 32) and emb.X.flags["C_CONTIGUOUS"] and emb.X.dtype == np.float32
    assert list(emb.frame.columns) == ["id", "label", "split", "path"]  # no `text`: an image table
    assert emb.ids.tolist() == sorted(emb.ids) and set(emb.labels) == {"class_0", "class_1", "class_2"}
    assert emb.provenance["node"] == "features.6" and emb.provenance["weights"] == "none"

    saved = emb.save(tmp_path / "emb.parquet")
    back = headstart.Embeddings.load(saved)
    np.testing.assert_array_equal(back.X, emb.X)
    assert back.provenance == emb.provenance and back.ids.tolist() == emb.ids.tolist()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    unlabelled = emb.frame.assign(label=None, site=[f"s{i % 3}" for i in range(len(emb))])
    unlabelled.attrs = emb.frame.attrs
    back = headstart.Embeddings.load(headstart.Embeddings(unlabelled, emb.X).save(tmp_path / "unlabelled.parquet"))
    assert back.frame["site"].tolist() == unlabelled["site"].tolist() and set(back.labels) == {None}

    again = headstart.embed("photos/", backbone="mobilenet_v2", **small)  # from the cache: the same vectors
    np.testing.assert_array_equal(again.X, emb.X)

    head = headstart.fit(emb, "knn", k=[1, 3, 5])
    assert head.params["k"] in (1, 3, 5) and 0 <= head.metrics["accuracy"] <= 1
    assert head.evaluation.selection.scores and len(head.evaluation.selection.scores) == 3  # chosen on val
    from_images = head.top_classes(["photos/"], batch_size=8, num_workers=0)
    from_table = head.predict(emb)
    by_path = dict(zip(from_images["path"], from_images["predicted"], strict=True))
    assert [by_path[p] for p in emb.frame["path"]] == from_table.tolist()  # same space, same answers
    assert set(from_images.columns) >= {"path", "predicted", "probability", "top5"}

    head.save(tmp_path / "model")
    from headstart.features.spec import EmbedOptions
    from headstart.workflow.predict import predict_images

    cli = predict_images(tmp_path / "model", ["photos/"], options=EmbedOptions(num_workers=0))
    assert cli["predicted"].tolist() == from_images["predicted"].tolist()


def test_a_head_refuses_embeddings_from_another_space(photos: Path) -> None:
    from headstart.heads.persist import ProvenanceMismatch

    kw = {"weights": None, "image_size": 32, "batch_size": 8, "num_workers": 0}
    emb = headstart.embed("photos/", layer="features.6", **kw)
    other = headstart.embed("photos/", layer="features.4", **kw)
    head = headstart.fit(emb, "ncm")
    with pytest.raises(ProvenanceMismatch, match="node"):
        head.predict(other)
    with pytest.raises(Exception, match="temperature|unknown|knn"):
        headstart.fit(emb, "knn", temperatur=0.1)


def test_the_names_a_notebook_imports() -> None:
    from headstart.features import embed

    assert callable(embed) and embed.__module__ == "headstart.features.engine"
    import headstart.features.engine  # noqa: F401 (the submodule no longer shadows the function)
    from headstart.features import embed as again

    assert again is embed


def test_a_head_is_shaped_like_a_scikit_learn_classifier(photos: Path, tmp_path: Path) -> None:
    from sklearn.base import is_classifier

    kw = {"weights": None, "layer": "features.6", "image_size": 32, "batch_size": 8, "num_workers": 0}
    emb = headstart.embed("photos/", **kw)
    for kind in ("logreg", "knn", "ncm", "svm"):
        head = headstart.fit(emb, kind)
        proba = head.predict_proba(emb.X)
        assert proba.shape == (len(emb), 3) and proba.dtype == np.float64
        assert list(head.classes_) == ["class_0", "class_1", "class_2"] == [str(c) for c in head.estimator.classes_]
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert (proba >= 0).all()
        assert head.predict(emb.X).tolist() == head.classes_[proba.argmax(axis=1)].tolist()
        if hasattr(head.estimator, "predict_proba"):  # the estimator's own order: classes_
            np.testing.assert_allclose(proba, head.estimator.predict_proba(emb.X), rtol=1e-6)
        np.testing.assert_array_equal(head.predict_proba(emb), proba)  # an Embeddings: provenance checked
        assert is_classifier(head.estimator) or hasattr(head.estimator, "classes_")

    saved = headstart.Head.load(head.save(tmp_path / "model"))
    assert saved.kind == head.kind and list(saved.classes_) == list(head.classes_)
    np.testing.assert_array_equal(saved.predict_proba(emb.X), head.predict_proba(emb.X))
    from_files = saved.predict_proba(sorted(emb.frame["path"]), batch_size=8, num_workers=0)
    order = np.argsort(emb.frame["path"].to_numpy())
    np.testing.assert_array_equal(from_files, head.predict_proba(emb.X[order]))
    with pytest.raises(ValueError, match="shape"):
        head.predict_proba(emb.X[:, :5])
    with pytest.raises(FileNotFoundError, match=f"expected {tmp_path / 'nomodel' / 'model.json'}"):
        headstart.Head.load(tmp_path / "nomodel")


def test_an_encoder_gives_the_tables_vectors_for_images_in_memory(photos: Path) -> None:
    from PIL import Image

    kw = {"weights": None, "layer": "features.6", "image_size": 32, "num_workers": 0}
    emb = headstart.embed("photos/", batch_size=8, **kw)
    # the batch size is part of the arithmetic (every batch is padded to it), so it is the table's; no cache
    enc = headstart.Encoder("mobilenet_v2", batch_size=8, cache_dir=None, **kw)
    paths = emb.frame["path"].tolist()[::-1]
    rows = [int(np.flatnonzero(emb.frame["path"].to_numpy() == p)[0]) for p in paths]
    from_paths = enc.encode(paths)
    assert from_paths.dtype == np.float32 and from_paths.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(from_paths, emb.X[rows])  # the same bits as the table
    assert enc.fingerprint == emb.provenance["fingerprint"]
    same = {k for k in emb.provenance if k != "dataset"}
    assert {k: enc.provenance[k] for k in same} == {k: emb.provenance[k] for k in same}
    images = [Image.open(p) for p in paths[:5]]
    np.testing.assert_array_equal(enc.encode(images), emb.X[rows[:5]])
    np.testing.assert_array_equal(enc.encode(Path(paths[0])), emb.X[rows[:1]])
    with pytest.raises(Exception, match="item 1 is a int"):
        enc.encode([paths[0], 3])
