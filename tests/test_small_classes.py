"""Labelled collections with small classes embed with their labels (CLI and notebook API); `fit` leaves out the
classes it cannot evaluate and names them, or stops in one line when fewer than two remain."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import headstart
from headstart.cli import main
from headstart.data.tables import load_embeddings
from tests.conftest import digit_images, write_folder

# ten classes of 2 to 6 images, 40 in all: a class of two has a train and a test image, and no val image
SIZES = dict(zip(range(10), (2, 2, 3, 3, 4, 4, 5, 5, 6, 6), strict=True))


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    write_folder(root, [(c, p) for c, n in SIZES.items() for _, p in digit_images(n_per_class=n, classes=(c,))])
    return root


@pytest.fixture
def one_per_class(tmp_path: Path) -> Path:
    """A manifest of 20 images in 20 classes (labels 120..139)."""
    paths = write_folder(tmp_path / "photos", digit_images(n_per_class=2, classes=tuple(range(10))))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [str(p) for p in paths], "label": [str(120 + i) for i in range(20)]}).to_csv(
        manifest, index=False
    )
    return manifest


def _embed(source: Path, out: Path, *flags: str) -> pd.DataFrame:
    assert main(["embed", str(source), "-o", str(out), "--backbone", "pixels", "--workers", "0", *flags]) == 0
    return load_embeddings(out).frame


def test_twenty_images_in_twenty_classes_embed_with_their_labels_and_fit_stops_in_one_line(
    one_per_class: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = _embed(one_per_class, tmp_path / "t.parquet")
    assert len(frame) == 20 and sorted(frame["label"]) == [str(120 + i) for i in range(20)]
    assert set(frame["split"]) == {"train"}  # one image per class: it is the class's training image
    api = headstart.embed(one_per_class, backbone="pixels", num_workers=0)
    assert api.frame[["id", "label", "split"]].equals(frame[["id", "label", "split"]])
    capsys.readouterr()
    assert main(["fit", "t.parquet", "--head", "ncm", "-o", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert "t.parquet has no test images" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_a_folder_of_small_classes_fits_with_the_excluded_classes_named(
    small_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = _embed(small_folder, tmp_path / "t.parquet")
    assert len(frame) == 40 and frame["label"].nunique() == 10
    splits = frame.groupby("label")["split"].agg(lambda s: "".join(sorted(x[1] for x in s)))
    assert splits["class_0"] == "er" and splits["class_2"] == "aer"  # 2: train, test; 3: train, val, test
    api = headstart.embed(small_folder, backbone="pixels", num_workers=0)
    assert api.frame[["id", "label", "split"]].equals(frame[["id", "label", "split"]])
    capsys.readouterr()
    caplog.clear()
    assert main(["fit", "t.parquet", "--head", "ncm", "-o", "m"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["left_out_of_evaluation"] == {"class_0": "val", "class_1": "val"}
    assert "left out of the evaluation: class 'class_0' (no val image), class 'class_1' (no val image)" in caplog.text
    head = headstart.fit(api, "ncm")
    assert head.evaluation.left_out == payload["left_out_of_evaluation"] and len(head.classes) == 8


def test_no_val_and_no_test_put_every_image_in_train(
    small_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = _embed(small_folder, tmp_path / "t.parquet", "--val", "0", "--test", "0")
    assert len(frame) == 40 and set(frame["split"]) == {"train"} and frame["label"].notna().all()
    capsys.readouterr()
    assert main(["fit", "t.parquet", "--head", "knn", "-o", "m"]) == 2
    assert "has no test images" in capsys.readouterr().err
