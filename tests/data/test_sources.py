"""Datasets from folders, manifests and built-ins, and every error a user can run into."""

from __future__ import annotations

import gzip
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from headstart.data import DatasetError, DatasetNotFound, SourceError, prepare_dataset
from headstart.data.builtin import load_builtin
from tests.conftest import digit_images, write_folder


def test_image_folder_is_listed_hashed_split_and_sorted(image_folder: Path) -> None:
    frame = prepare_dataset(str(image_folder), name="imgs")
    assert len(frame) == 36 and sorted(frame["label"].unique()) == ["class_0", "class_1", "class_2"]
    assert frame["id"].is_monotonic_increasing and frame["id"].str.len().eq(32).all()
    assert frame["image"].isna().all() and frame["path"].str.endswith(".png").all()
    counts = frame.groupby(["label", "split"]).size().unstack()
    assert (counts["test"] == 4).all() and (counts["val"] == 2).all() and (counts["train"] == 6).all()
    assert frame.attrs["headstart"]["splits"] == {"test": 12, "train": 18, "val": 6}


def test_same_input_same_split_other_seed_other_split(image_folder: Path) -> None:
    a = prepare_dataset(str(image_folder), seed=0)
    b = prepare_dataset(str(image_folder), seed=0)
    c = prepare_dataset(str(image_folder), seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] != c["split"]).any()


def test_manifest_paths_are_relative_to_it_and_its_split_wins(tmp_path: Path, image_folder: Path) -> None:
    files = sorted(image_folder.rglob("*.png"))
    manifest = image_folder / "manifest.csv"
    rows = [
        {"path": str(p.relative_to(image_folder)), "label": p.parent.name, "split": "test" if i % 4 == 0 else ""}
        for i, p in enumerate(files)
    ]
    pd.DataFrame(rows).to_csv(manifest, index=False)
    frame = prepare_dataset(str(manifest))
    assert len(frame) == len(files)
    by_path = frame.set_index("path")["split"]
    for i, p in enumerate(files):
        if i % 4 == 0:
            assert by_path[str(p)] == "test"
        else:
            assert by_path[str(p)] in ("train", "val")  # the manifest names a test set, so no other row is test


def test_parquet_manifest(tmp_path: Path, image_folder: Path) -> None:
    files = sorted(image_folder.rglob("*.png"))
    pd.DataFrame({"path": [str(p) for p in files], "label": [p.parent.name for p in files]}).to_parquet(
        tmp_path / "m.parquet"
    )
    assert len(prepare_dataset(str(tmp_path / "m.parquet"))) == len(files)


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,label\na.png,x\n", "neither a path column \\(images\\) nor a text column \\(texts\\)"),
        ("path,label,ID\na.png,x,7\n", "column\\(s\\) ID, names headstart uses .* rename them"),
        ("path,label\n", "has no rows"),
        ("path,label\nmissing.png,x\n", "1 image file\\(s\\) that do not exist, e.g. .*missing.png"),
        ("path,label\n,x\n", "empty 'path' on row\\(s\\) 2"),
        ("path,label,split\na.png,x,training\n", "split value\\(s\\) \\['training'\\]"),
    ],
)
def test_bad_manifests_are_named_with_the_fix(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(content)
    with pytest.raises(SourceError, match=message) as err:
        prepare_dataset(str(manifest))
    assert "manifest.csv" in str(err.value)


def test_one_class_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path / "one", digit_images(classes=(3,), n_per_class=5))
    with pytest.raises(DatasetError, match="only one class \\('class_3'\\).*root/<class>/<image>"):
        prepare_dataset(str(tmp_path / "one"), name="one")


def test_empty_folder_and_unknown_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no class sub-folders"):
        prepare_dataset(str(tmp_path / "empty"))
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    (tmp_path / "noimg" / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(SourceError, match="holds no image files"):
        prepare_dataset(str(tmp_path / "noimg"))
    with pytest.raises(SourceError, match="neither a built-in dataset \\(fortunes, digits, mnist, fashion-mnist\\)"):
        prepare_dataset("no_such_thing")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(SourceError, match="not a manifest"):
        prepare_dataset(str(tmp_path / "x.txt"))


def test_digits_builtin() -> None:
    frame = prepare_dataset("digits")
    assert len(frame) == 1797 and frame["path"].isna().all() and frame["image"].notna().all()
    assert frame["id"].is_unique
    assert frame.attrs["headstart"]["splits"] == {"test": 539, "train": 989, "val": 269}


def test_limit_keeps_a_stratified_subset() -> None:
    frame = prepare_dataset("digits", limit=200)
    assert len(frame) == 200
    assert frame["label"].value_counts().between(19, 21).all()


def test_shifted_copy_has_new_ids_and_inverted_pixels() -> None:
    plain = prepare_dataset("digits", limit=50)
    inverted = prepare_dataset("digits", limit=50, shift="invert")
    assert not set(plain["id"]) & set(inverted["id"])
    a = np.concatenate([np.asarray(Image.open(BytesIO(x))).ravel() for x in plain["image"]])
    b = np.concatenate([np.asarray(Image.open(BytesIO(x))).ravel() for x in inverted["image"]])
    np.testing.assert_array_equal(np.sort(255 - a), np.sort(b))  # the same 50 images, inverted


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_and_keeps_the_official_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    frame = load_builtin("fashion-mnist", str(tmp_path))
    assert len(frame) == 50 and frame["label"].iloc[1] == "Trouser"
    prepared = prepare_dataset("fashion-mnist", root=str(tmp_path))
    assert (prepared["split"] == "test").sum() == 10  # the official t10k set, nothing more
    assert set(prepared["split"]) == {"train", "val", "test"}


def test_missing_idx_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="needs the IDX files .*train-images-idx3-ubyte.*`root:`"):
        load_builtin("mnist", str(tmp_path))
