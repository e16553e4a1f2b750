"""The stat cache: a second prepare reads no file; an edited file is read again, alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import headstart.data.prepare as prepare_module
from headstart.data.hashing import file_id
from headstart.data.prepare import prepare_dataset
from headstart.data.statcache import StatCache


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file prepare reads to hash it."""
    seen: list[str] = []

    def counting(path: str) -> str:
        seen.append(path)
        return file_id(path)

    monkeypatch.setattr(prepare_module, "file_id", counting)
    return seen


def _age(root: Path, seconds: float = 60.0) -> None:
    """Move every file's mtime into the past, out of the racy window."""
    for path in root.rglob("*.png"):
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_second_prepare_reads_nothing_and_one_edit_reads_one(image_folder, tmp_path, reads):
    _age(image_folder)
    cache = tmp_path / "stat.sqlite"
    first = prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    assert len(reads) == len(first) == 36
    reads.clear()
    second = prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    assert reads == []
    assert second.equals(first)

    edited = sorted(image_folder.rglob("*.png"))[5]
    other = sorted(image_folder.rglob("*.png"))[6]
    shutil.copyfile(other, edited)  # new content, new mtime
    st = edited.stat()
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns - 30 * 10**9))  # out of the racy window
    third = prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    assert reads == [str(edited)]
    assert third.loc[third["path"] == str(edited), "id"].item() == file_id(other)


def test_without_a_cache_every_file_is_read(image_folder, reads):
    prepare_dataset(str(image_folder), name="f")
    prepare_dataset(str(image_folder), name="f")
    assert len(reads) == 72


def test_copied_tree_and_recent_files_are_not_trusted(image_folder, tmp_path, reads):
    cache = tmp_path / "stat.sqlite"
    prepare_dataset(str(image_folder), name="f", stat_cache=cache)  # files just written: racy, not remembered
    reads.clear()
    prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    assert len(reads) == 36
    _age(image_folder)
    prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    copy = tmp_path / "copy"
    shutil.copytree(image_folder, copy, copy_function=shutil.copy2)  # same sizes and mtimes, new paths/inodes
    reads.clear()
    prepare_dataset(str(copy), name="f", stat_cache=cache)
    assert len(reads) == 36


def test_same_path_new_inode_is_read_again(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"one")
    os.utime(path, ns=(0, 10**18))
    calls = []

    def hash_file(p: str) -> str:
        calls.append(p)
        return file_id(p)

    cache = StatCache(tmp_path / "stat.sqlite")
    old = os.stat(path)
    assert cache.ids([str(path)], hash_file) == [file_id(path)]
    os.utime(path, ns=(0, old.st_mtime_ns - 10**10))
    cache.ids([str(path)], hash_file)
    assert len(calls) == 2  # mtime changed
    replacement = tmp_path / "b.bin"
    replacement.write_bytes(b"two")
    os.utime(replacement, ns=(0, old.st_mtime_ns - 10**10))
    os.replace(replacement, path)  # same path, size and mtime, another inode
    assert cache.ids([str(path)], hash_file) == [file_id(path)]
    assert len(calls) == 3


def test_a_damaged_cache_falls_back_to_hashing(image_folder, tmp_path, reads):
    cache = tmp_path / "stat.sqlite"
    cache.write_bytes(b"not a sqlite file" * 100)
    frame = prepare_dataset(str(image_folder), name="f", stat_cache=cache)
    assert len(reads) == len(frame)
