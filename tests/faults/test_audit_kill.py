"""kill -9 during `headstart audit`: the previous audit folder stays whole (its tables, page, thumbnails and
summary together), and the next audit removes what the killed one left."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

pytest.importorskip("cleanlab")
pytest.importorskip("imagehash")

from tests.conftest import digit_images, write_folder  # noqa: E402
from tests.faults._helpers import embed_folder, run, snapshot, temporaries, write_table  # noqa: E402

AUDIT = ["--map", "pca", "--set", "C=1"]


@pytest.mark.parametrize("kill_at", [2, 6])  # 2: one finding table written in the new folder; 6: just before the swap
def test_an_audit_killed_at_any_point_leaves_the_previous_audit_whole(kill_at: int, tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_folder(images, digit_images(n_per_class=12, classes=(0, 1, 2)))
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    embed_folder(images, old, tmp_path / "cache", limit=30)
    embed_folder(images, new, tmp_path / "cache")
    out = tmp_path / "audit"
    assert run(["audit", old, "-o", out, *AUDIT], tmp_path).returncode == 0
    before = snapshot(out)
    assert {"index.html", "summary.json", "duplicates.parquet", "label_issues.parquet", "outliers.parquet"} <= set(
        before
    ) and any(name.startswith("thumbs/") for name in before)

    killed = run(["audit", new, "-o", out, *AUDIT], tmp_path, kill_at=kill_at)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert snapshot(out) == before  # no new table, thumbnail or page beside the old ones
    assert temporaries(tmp_path)  # the killed audit's half-built folder ...

    assert run(["audit", new, "-o", out, *AUDIT], tmp_path).returncode == 0
    assert temporaries(tmp_path) == []  # ... is gone after the next audit
    after = snapshot(out)
    assert after != before and set(after) >= {"index.html", "summary.json"}


def test_an_audit_refuses_to_replace_a_folder_that_is_not_an_audit(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.parquet", n_per_class=10)
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not an audit")

    result = run(["audit", table, "-o", mine, *AUDIT], tmp_path)

    assert result.returncode == 2 and "is not an audit's folder" in result.stderr, result.stderr
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]
