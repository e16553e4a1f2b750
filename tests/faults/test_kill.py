"""kill -9 at chosen commit points (HEADSTART_FAULT_AFTER_WRITES): the previous output stays whole, and the next
run removes what the killed one left."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from headstart._files import clean_stale, write_json
from headstart.heads.persist import load_head
from tests.conftest import REPO, digit_images, write_folder
from tests.faults._helpers import EMBED, embed_folder, run, snapshot, temporaries, write_table


@pytest.mark.parametrize("kill_at", [2, 5])  # 2: half-way through building the new folder; 5: just before the swap
def test_a_fit_killed_at_any_point_leaves_the_old_model_dir_whole(kill_at: int, tmp_path: Path) -> None:
    old = write_table(tmp_path / "old.parquet", n_per_class=10)
    new = write_table(tmp_path / "new.parquet", n_per_class=15)
    model = tmp_path / "models" / "knn"
    assert run(["fit", old, "--head", "knn", "-o", model], tmp_path).returncode == 0
    before = snapshot(model)

    killed = run(["fit", new, "--head", "knn", "-o", model], tmp_path, kill_at=kill_at)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert snapshot(model) == before  # old model.json, model.npz, metrics.json and predictions.csv together
    assert load_head(model).estimator.n_features_in_ == 16
    assert temporaries(tmp_path / "models")  # the killed run's half-built folder ...

    assert run(["fit", new, "--head", "knn", "-o", model], tmp_path).returncode == 0
    assert temporaries(tmp_path / "models") == []  # ... is gone after the next run
    assert snapshot(model) != before and len(load_head(model).estimator.index_.reconstruct_n(0, 27)) == 27


def test_a_swap_killed_between_its_two_renames_is_undone_by_the_next_run(tmp_path: Path) -> None:
    """Where the system has no atomic exchange, the old folder is renamed aside first; a kill right then loses
    nothing: the next write (or read through clean_stale) puts it back."""
    folder = tmp_path / "model"
    write_json(folder / "metrics.json", {"accuracy": 0.5})
    before = snapshot(folder)
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        import headstart._files as files
        files._exchange = lambda a, b: False  # as on a system without renameat2
        with files.atomic_dir(sys.argv[1]) as tmp:
            (tmp / "metrics.json").write_text("{}")
    """)
    killed = run([folder], tmp_path, code=code, kill_at=2)  # 1: before the swap, 2: between the renames
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not folder.exists() and len(temporaries(tmp_path)) == 2  # the old folder aside, the new one

    clean_stale(folder)

    assert snapshot(folder) == before and temporaries(tmp_path) == []


def test_a_report_killed_before_its_rename_leaves_a_temporary_that_git_ignores_and_the_next_write_removes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "reports" / "confusion.json"
    write_json(out, {"old": True})
    code = "import sys; from headstart._files import write_json; write_json(sys.argv[1], {'new': True})"

    killed = run([out], tmp_path, code=code, kill_at=1)

    assert killed.returncode == -signal.SIGKILL
    assert out.read_text() == '{\n  "old": true\n}\n'
    (stray,) = temporaries(tmp_path)
    ignored = subprocess.run(["git", "-C", REPO, "check-ignore", "-q", f"reports/{stray.name}"], check=False)
    assert ignored.returncode == 0, f"git would show reports/{stray.name} as untracked"

    write_json(out, {"new": True})
    assert temporaries(tmp_path) == [] and "new" in out.read_text()


def test_an_embed_killed_before_its_tables_are_renamed_keeps_the_old_tables(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=12))
    good = tmp_path / "out" / "good.parquet"
    embed_folder(folder, good, tmp_path / "cache", limit=12)
    embed_folder(folder, tmp_path / "warm.parquet", tmp_path / "cache")  # nothing left to embed: commits are renames
    before = snapshot(good.parent)

    killed = run(["embed", folder, "-o", good, "--cache-dir", "cache", *EMBED], tmp_path, kill_at=1)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert snapshot(good.parent) == before
    assert temporaries(good.parent)  # removed by the next write of these tables
