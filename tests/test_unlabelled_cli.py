"""Unlabelled collections through the command line: embed, heads refusing, neighbours, predict, extra columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headstart.cli import main
from headstart.data.tables import load_embeddings

EMBED = ["--weights", "none", "--layer", "features.6", "--image-size", "32", "--workers", "0"]


@pytest.fixture
def flat(image_folder: Path, tmp_path: Path) -> Path:
    """The image folder's 36 images in one folder, without classes."""
    out = tmp_path / "flat"
    out.mkdir()
    for path in sorted(image_folder.rglob("*.png")):
        shutil.copy(path, out / f"{path.parent.name}_{path.name}")
    return out


def test_unlabelled_folder_embeds_searches_and_is_refused_by_heads(
    flat: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["embed", str(flat), "-o", "u.parquet", *EMBED]) == 0
    table = load_embeddings("u.parquet")
    assert len(table.frame) == 36 and not table.labelled and table.frame["label"].isna().all()
    assert all(label is None for label in table.labels)
    capsys.readouterr()

    assert main(["fit", "u.parquet", "--head", "logreg", "-o", "model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no labels" in err and "headstart neighbours" in err
    assert not Path("model").exists()

    # a query by id: its row is left out of its own answer; the answer is numpy's brute force
    query = table.frame["id"].iloc[5]
    assert main(["neighbours", "u.parquet", "--query", query, "-k", "4"]) == 0
    rows = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    X = table.X / np.linalg.norm(table.X, axis=1, keepdims=True)
    sims = X @ X[5]
    sims[5] = -np.inf
    best = np.argsort(-sims, kind="stable")[:4]
    assert rows["id"].tolist() == table.frame["id"].iloc[best].tolist()
    np.testing.assert_allclose(rows["similarity"], sims[best], atol=1e-5)
    assert rows.columns.tolist() == ["query", "rank", "id", "path", "similarity"]

    # a query image is embedded with the table's own settings: the same file finds itself first, similarity 1
    image = sorted(flat.glob("*.png"))[7]
    assert main(["neighbours", "u.parquet", "--query", str(image), "--query", query, "-k", "3", "-o", "n.json"]) == 0
    records = json.loads(Path("n.json").read_text())
    assert [r["query"] for r in records] == [str(image)] * 3 + [query] * 3
    assert records[0]["path"] == str(image) and records[0]["similarity"] == pytest.approx(1.0, abs=1e-5)

    assert main(["neighbours", "u.parquet", "--query", "nothing-like-this"]) == 2
    assert "neither an image file nor an id" in capsys.readouterr().err

    # predict works on an unlabelled table with a head fitted on labelled images of the same space
    assert main(["embed", str(image_folder), "-o", "l.parquet", *EMBED]) == 0
    assert main(["fit", "l.parquet", "--head", "knn", "-o", "model", "--set", "k=3"]) == 0
    capsys.readouterr()
    assert main(["predict", "model", "--embeddings", "u.parquet", "-o", "pred.csv"]) == 0
    pred = pd.read_csv("pred.csv")
    assert len(pred) == 36 and pred["predicted"].notna().all()
    truth = pred["path"].map(lambda p: Path(p).name.split("_img")[0])
    assert (pred["predicted"] == truth).mean() > 0.5  # a random-init network, but digits still cluster


def test_manifest_columns_reach_the_embedding_table(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = sorted(image_folder.rglob("*.png"))
    pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "label": [p.parent.name for p in paths],
            "patient": [f"p{i % 6}" for i in range(len(paths))],
        }
    ).to_csv("m.csv", index=False)
    assert main(["embed", "m.csv", "-o", "e.parquet", "--group-column", "patient", *EMBED]) == 0
    table = load_embeddings("e.parquet")
    assert table.frame.columns.tolist() == ["id", "label", "split", "path", "patient"]
    assert table.labelled and (table.frame.groupby("patient")["split"].nunique() == 1).all()
    by_path = dict(zip(table.frame["path"], table.frame["patient"], strict=True))
    assert [by_path[str(p)] for p in paths] == [f"p{i % 6}" for i in range(len(paths))]
    assert "patient" not in json.dumps(table.provenance)  # extra columns never enter the provenance
