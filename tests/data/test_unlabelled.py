"""Unlabelled collections, extra manifest columns and group splits, at the data level."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from headstart.data.prepare import DatasetError, prepare_dataset
from headstart.data.splits import assign_splits
from headstart.data.tables import read_prepared, write_prepared


def _flat(image_folder: Path, tmp_path: Path) -> Path:
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(image_folder.rglob("*.png")):
        shutil.copy(path, flat / f"{path.parent.name}_{path.name}")
    return flat


def test_a_plain_folder_is_an_unlabelled_collection(image_folder: Path, tmp_path: Path) -> None:
    frame = prepare_dataset(str(_flat(image_folder, tmp_path)), name="flat")
    labelled = prepare_dataset(str(image_folder), name="classes")
    assert len(frame) == 36 and frame["label"].isna().all()
    assert sorted(frame["id"]) == sorted(labelled["id"])  # the same bytes, the same ids
    assert set(frame["split"]) == {"train", "val", "test"}
    meta = frame.attrs["headstart"]
    assert meta["labels"] == "none" and meta["classes"] == []
    assert "labels" not in labelled.attrs["headstart"]  # labelled metadata unchanged
    write_prepared(tmp_path / "p.parquet", frame, meta)
    back = read_prepared(tmp_path / "p.parquet")
    assert back["label"].isna().all() and back["id"].tolist() == frame["id"].tolist()
    assert pq.read_schema(tmp_path / "p.parquet").field("label").nullable
    write_prepared(tmp_path / "l.parquet", labelled, labelled.attrs["headstart"])
    assert not pq.read_schema(tmp_path / "l.parquet").field("label").nullable


def test_labels_none_ignores_class_folders(image_folder: Path) -> None:
    frame = prepare_dataset(str(image_folder), name="x", labels="none")
    assert len(frame) == 36 and frame["label"].isna().all()


def _manifest(image_folder: Path, tmp_path: Path, **columns: list) -> Path:
    paths = sorted(image_folder.rglob("*.png"))
    frame = pd.DataFrame({"path": [str(p) for p in paths], **{k: v[: len(paths)] for k, v in columns.items()}})
    out = tmp_path / "manifest.csv"
    frame.to_csv(out, index=False)
    return out


def test_manifest_without_label_keeps_its_extra_columns(image_folder: Path, tmp_path: Path) -> None:
    patients = [f"p{i % 9}" for i in range(36)]
    manifest = _manifest(image_folder, tmp_path, Patient_ID=patients, site=["a", ""] * 18)
    frame = prepare_dataset(str(manifest), name="m")
    assert frame.columns.tolist() == ["id", "label", "split", "path", "image", "Patient_ID", "site"]
    assert frame["label"].isna().all() and frame.attrs["headstart"]["columns"] == ["Patient_ID", "site"]
    by_path = frame.set_index("path")
    paths = sorted(str(p) for p in image_folder.rglob("*.png"))
    assert [by_path.at[p, "Patient_ID"] for p in paths] == patients
    assert by_path["site"].isna().sum() == 18  # empty cells are null
    write_prepared(tmp_path / "p.parquet", frame, frame.attrs["headstart"])
    back = read_prepared(tmp_path / "p.parquet", images=False)
    assert back.columns.tolist() == ["id", "label", "split", "path", "Patient_ID", "site"]
    assert back["Patient_ID"].tolist() == frame["Patient_ID"].tolist()


def test_extra_columns_change_neither_ids_nor_splits(image_folder: Path, tmp_path: Path) -> None:
    labels = [p.parent.name for p in sorted(image_folder.rglob("*.png"))]
    plain = prepare_dataset(str(_manifest(image_folder, tmp_path, label=labels)), name="m")
    other = tmp_path / "other"
    other.mkdir()
    extra = prepare_dataset(
        str(_manifest(image_folder, other, label=labels, patient=[str(i) for i in range(36)])), name="m"
    )
    pd.testing.assert_frame_equal(plain, extra.drop(columns=["patient"]))


def test_group_column_keeps_each_group_in_one_split(image_folder: Path, tmp_path: Path) -> None:
    labels = [p.parent.name for p in sorted(image_folder.rglob("*.png"))]
    patients = [f"p{i % 10}" for i in range(36)]
    manifest = _manifest(image_folder, tmp_path, label=labels, patient=patients)
    frame = prepare_dataset(str(manifest), name="m", group_column="patient")
    per_group = frame.groupby("patient")["split"].nunique()
    assert (per_group == 1).all() and len(per_group) == 10
    assert set(frame["split"]) == {"train", "val", "test"}
    assert frame.attrs["headstart"]["group_column"] == "patient"
    without = prepare_dataset(str(manifest), name="m")
    assert (without.groupby("patient")["split"].nunique() > 1).any()  # the test can fail: groups do get split
    with pytest.raises(DatasetError, match="group_column is 'subject'.*its own columns: patient"):
        prepare_dataset(str(manifest), name="m", group_column="subject")


def test_group_splits_are_stratified_and_keep_copies_together() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    labels = [f"c{c}" for c in rng.integers(0, 5, n)]
    groups = [f"g{g}" for g in rng.integers(0, 300, n)]
    ids = [f"i{i}" for i in range(n)]
    ids[10] = ids[20]  # a copy of one image in (probably) another group
    splits = assign_splits(ids, labels, [None] * n, val=0.15, test=0.3, seed=0, groups=groups)
    frame = pd.DataFrame({"split": splits, "group": groups, "label": labels, "id": ids})
    assert (frame.groupby("group")["split"].nunique() == 1).all()
    assert splits[10] == splits[20]
    shares = frame.groupby("label")["split"].value_counts(normalize=True).unstack()
    assert np.allclose(shares["test"], 0.3, atol=0.06) and np.allclose(shares["val"], 0.15, atol=0.06)
    again = assign_splits(ids, labels, [None] * n, val=0.15, test=0.3, seed=0, groups=groups)
    assert again.tolist() == splits.tolist()
    other = assign_splits(ids, labels, [None] * n, val=0.15, test=0.3, seed=1, groups=groups)
    assert other.tolist() != splits.tolist()
    preset = [None] * n
    preset[0] = "test"
    fixed = assign_splits(ids, labels, preset, val=0.15, test=0.3, seed=0, groups=groups)
    assert set(fixed[[g == groups[0] for g in groups]]) == {"test"}  # the group follows its preset row
