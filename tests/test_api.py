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
    assert list(emb.frame.columns) == ["id", "label", "split", "path"]
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
    from_images = head.predict_proba(["photos/"], batch_size=8, num_workers=0)
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
