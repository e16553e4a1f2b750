"""The prepare stage's memo: a no-op rerun leaves the table alone; any change to what it depends on reruns it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import headstart.data.prepare as prepare_module
from headstart.data.memo import PrepareMemo
from headstart.pipeline import prepare as stage
from tests.data.test_sources import _idx


def _age(root: Path, seconds: int = 60) -> None:
    for path in [root, *root.rglob("*")]:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The datasets prepare_dataset really ran for."""
    seen: list[str] = []
    real = prepare_module.prepare_dataset

    def counting(source: str, **kwargs):  # noqa: ANN003, ANN202
        seen.append(kwargs["name"])
        return real(source, **kwargs)

    monkeypatch.setattr(prepare_module, "prepare_dataset", counting)
    return seen


def _params(tmp_path: Path, source: Path | str, seed: int = 0) -> None:
    (tmp_path / "params.yaml").write_text(
        f"seed: {seed}\ndatasets:\n  mine:\n    source: {source}\n"
        "backbones:\n  px: {arch: pixels}\nheads:\n  ncm: {}\n"
    )


def test_noop_rerun_skips_and_changes_rerun(image_folder: Path, tmp_path: Path, monkeypatch, runs) -> None:
    monkeypatch.chdir(tmp_path)
    _age(image_folder)
    _params(tmp_path, image_folder)
    out = tmp_path / "data" / "prepared" / "mine.parquet"
    assert stage.main(["mine"]) == 0 and runs == ["mine"]
    before = out.stat()
    assert stage.main(["mine"]) == 0 and runs == ["mine"]  # skipped
    assert out.stat().st_mtime_ns == before.st_mtime_ns and out.stat().st_ino == before.st_ino

    image = sorted(image_folder.rglob("*.png"))[0]
    image.write_bytes(sorted(image_folder.rglob("*.png"))[1].read_bytes())
    os.utime(image, ns=(0, image.stat().st_mtime_ns - 30 * 10**9))
    assert stage.main(["mine"]) == 0 and runs == ["mine"] * 2  # an edited image
    assert stage.main(["mine"]) == 0 and len(runs) == 2

    (image_folder / "class_9").mkdir()  # with enough images that train, val and test each get some
    for i, source in enumerate(sorted(image_folder.rglob("*.png"))[:12]):
        (image_folder / "class_9" / f"new{i}.png").write_bytes(source.read_bytes())
    _age(image_folder, 10)
    assert stage.main(["mine"]) == 0 and len(runs) == 3  # a new class folder

    _params(tmp_path, image_folder, seed=1)
    assert stage.main(["mine"]) == 0 and len(runs) == 4  # another setting
    content = out.read_bytes()
    out.unlink()
    out.write_bytes(content)  # re-linked with the same bytes, as DVC does after caching an output: still fresh
    assert stage.main(["mine"]) == 0 and len(runs) == 4
    out.write_bytes(content[:-1] + b"x")  # the table altered
    assert stage.main(["mine"]) == 0 and len(runs) == 5
    assert out.read_bytes() == content
    assert stage.main(["mine"]) == 0 and len(runs) == 5


def test_racy_sources_and_digits(image_folder: Path, tmp_path: Path, monkeypatch, runs) -> None:
    monkeypatch.chdir(tmp_path)
    _params(tmp_path, image_folder)  # images written just now: the memo cannot vouch for them yet
    assert stage.main(["mine"]) == 0
    assert stage.main(["mine"]) == 0 and len(runs) == 2
    _params(tmp_path, "digits")
    assert stage.main(["mine"]) == 0 and stage.main(["mine"]) == 0 and len(runs) == 3


def test_a_parquet_manifest_is_vouched_for_by_the_files_it_lists(tmp_path: Path) -> None:
    import pandas as pd

    images = [tmp_path / f"{i}.png" for i in range(3)]
    for i, image in enumerate(images):
        image.write_bytes(bytes([i]) * 10)
    manifest = tmp_path / "m.parquet"
    pd.DataFrame({"path": [p.name for p in images], "label": ["a", "b", "a"]}).to_parquet(manifest)
    _age(tmp_path)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"y")
    memo = PrepareMemo(out, {"source": str(manifest)}, tmp_path / "memo")
    assert not memo.fresh()
    memo.record()
    assert PrepareMemo(out, {"source": str(manifest)}, tmp_path / "memo").fresh()
    images[1].write_bytes(b"another image")  # a listed image changes, the manifest does not
    assert not PrepareMemo(out, {"source": str(manifest)}, tmp_path / "memo").fresh()


def test_idx_builtins_are_vouched_for_by_their_files(tmp_path: Path, monkeypatch, runs) -> None:
    monkeypatch.chdir(tmp_path)
    idx = tmp_path / "idx"
    idx.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        _idx(idx / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(idx / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    _age(idx)
    (tmp_path / "params.yaml").write_text(
        f"datasets:\n  mine:\n    source: fashion-mnist\n    root: {idx}\n"
        "backbones:\n  px: {arch: pixels}\nheads:\n  ncm: {}\n"
    )
    assert stage.main(["mine"]) == 0 and stage.main(["mine"]) == 0 and len(runs) == 1
    labels = idx / "t10k-labels-idx1-ubyte.gz"
    _idx(labels, (np.arange(20) + 1) % 10)
    os.utime(labels, ns=(0, labels.stat().st_mtime_ns - 10 * 10**9))
    assert stage.main(["mine"]) == 0 and len(runs) == 2
