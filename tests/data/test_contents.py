"""headstart-sources/<dataset>.json: a dataset's files by name and content, cheap to recheck, the same on any clone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from headstart.data import contents
from headstart.data.contents import source_contents
from headstart.workflow.sources import write_sources
from tests.conftest import digit_images, write_folder


def _age(root: Path, seconds: float = 60) -> None:
    """Move every mtime back, out of the racy window in which a file's stat cannot be trusted yet."""
    for path in [root, *root.rglob("*")]:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write_folder(root, digit_images(n_per_class=3))
    _age(root)
    return root


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = contents.StatCache.ids

    def counting(self, paths, hash_file, on_hashed=None):
        return real(self, paths, lambda p: read.append(p) or hash_file(p), on_hashed)

    monkeypatch.setattr(contents.StatCache, "ids", counting)
    return read


def test_an_unchanged_folder_is_only_stat_ed_and_one_edit_reads_one_file(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kw = {"stat_cache": tmp_path / "stat.sqlite", "memo_dir": tmp_path / "memo"}
    read = _reads(monkeypatch)
    first = source_contents("photos", str(folder), **kw)
    assert first["files"] == 9 and len(read) == 9 and first["content"]
    opened = []
    monkeypatch.setattr(contents.StatCache, "_load", lambda self, paths: opened.append(1) or {})
    assert source_contents("photos", str(folder), **kw) == first and not opened  # the memo: stats only
    monkeypatch.undo()
    read = _reads(monkeypatch)
    edited = sorted(folder.rglob("*.png"))[4]
    edited.write_bytes(sorted(folder.rglob("*.png"))[5].read_bytes())
    _age(edited)
    second = source_contents("photos", str(folder), **kw)
    assert read == [str(edited)] and second["content"] != first["content"] and second["files"] == 9


def test_names_count_so_moving_an_image_to_another_class_changes_it(folder: Path, tmp_path: Path) -> None:
    kw = {"stat_cache": None, "memo_dir": None}
    before = source_contents("photos", str(folder), **kw)["content"]
    image = next((folder / "class_1").glob("*.png"))
    image.rename(folder / "class_2" / image.name)
    assert source_contents("photos", str(folder), **kw)["content"] != before


def test_a_copy_elsewhere_gives_the_same_bytes_and_a_missing_source_gives_none(folder: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone" / "photos"
    shutil.copytree(folder, clone)
    kw = {"stat_cache": tmp_path / "stat.sqlite", "memo_dir": tmp_path / "memo"}
    mine = source_contents("photos", str(folder), **kw)
    theirs = source_contents("photos", str(clone), **kw)
    assert {k: v for k, v in mine.items() if k != "source"} == {k: v for k, v in theirs.items() if k != "source"}
    assert source_contents("photos", str(tmp_path / "nowhere"), **kw) == {
        "dataset": "photos", "source": str(tmp_path / "nowhere"), "files": 0, "content": None
    }  # fmt: skip


def test_a_manifest_counts_its_own_bytes_and_the_images_it_lists(folder: Path, tmp_path: Path) -> None:
    images = sorted(folder.rglob("*.png"))
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p.relative_to(tmp_path)},{p.parent.name}\n" for p in images))
    kw = {"stat_cache": None, "memo_dir": None}
    before = source_contents("m", str(manifest), **kw)
    assert before["files"] == 10
    images[0].write_bytes(images[1].read_bytes())  # a listed image changes, the manifest does not
    assert source_contents("m", str(manifest), **kw)["content"] != before["content"]
    import pandas as pd

    pd.DataFrame({"path": [str(p) for p in images]}).to_parquet(tmp_path / "list.parquet")
    assert source_contents("m", str(tmp_path / "list.parquet"), **kw)["files"] == 10


def test_the_versions_stage_writes_one_file_per_dataset_and_drops_the_stale_ones(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        f"datasets:\n  photos:\n    source: {folder}\n  digits:\n    source: digits\n"
        "backbones:\n  pixels:\n    arch: pixels\nheads:\n  knn: {}\n"
    )
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "gone.json").write_text("{}")
    written = write_sources(tmp_path / "sources", tmp_path / "params.yaml")
    assert sorted(p.name for p in (tmp_path / "sources").iterdir()) == ["digits.json", "photos.json"] == sorted(
        p.name for p in written
    )
    digits = json.loads((tmp_path / "sources" / "digits.json").read_text())
    assert digits["files"] == 1 and digits["content"]
    stat = (tmp_path / "sources" / "photos.json").stat()
    write_sources(tmp_path / "sources", tmp_path / "params.yaml")
    assert (tmp_path / "sources" / "photos.json").stat().st_mtime_ns == stat.st_mtime_ns  # unchanged: not rewritten
