"""`headstart cache info | prune | clear`: two fingerprints, one named by the tables, the other not."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from headstart.cli import main
from headstart.data import prepare_dataset
from headstart.features.cache import EmbeddingCache, hold_lock
from headstart.features.cache_admin import cache_info, clear, fingerprints_in_use, prune
from headstart.features.engine import EmbedOptions, embed
from headstart.features.registry import BackboneSpec

USED = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32)
OLD = BackboneSpec("mobilenet_v2", weights=None, layers=("features.4",), image_size=40)


@pytest.fixture
def two(image_folder: Path, tmp_path: Path) -> dict[str, object]:
    """A cache with two fingerprints; the tables under tables/ use one of them."""
    cache = tmp_path / "cache"
    options = EmbedOptions(batch_size=8, num_workers=0, cache_dir=cache)
    prepared = prepare_dataset(str(image_folder), name="imgs")
    used = embed(prepared, USED, tmp_path / "tables" / "imgs" / "small", options=options)
    old = embed(prepared, OLD, tmp_path / "elsewhere", options=options)
    return {
        "cache": cache,
        "tables": tmp_path / "tables",
        "used": used.provenance["features.6"]["base_fingerprint"],
        "old": old.provenance["features.4"]["base_fingerprint"],
        "prepared": prepared,
        "options": options,
    }


def test_info_names_each_fingerprint_and_whether_the_tables_use_it(two: dict, capsys: pytest.CaptureFixture) -> None:
    in_use = fingerprints_in_use([two["tables"]])
    assert in_use == {two["used"]}  # the failures table beside it is skipped, not an error
    entries = {e.fingerprint: e for e in cache_info(two["cache"], in_use)}
    assert set(entries) == {two["used"], two["old"]}
    used, old = entries[two["used"]], entries[two["old"]]
    assert used.in_use and not old.in_use
    assert used.backbone == "mobilenet_v2" and used.layers == ("features.6 avg",) and old.layers == ("features.4 avg",)
    assert used.images == 36 and used.records == 5  # 36 images in batches of 8
    assert used.bytes > 36 * 32 * 4 and used.last_written is not None

    assert main(["cache", "info", "--cache-dir", str(two["cache"]), "--tables", str(two["tables"]), "--json"]) == 0
    rows = {r["fingerprint"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[two["used"]]["in_use"] is True and rows[two["old"]]["in_use"] is False
    assert rows[two["old"]]["images"] == 36


def test_prune_keeps_what_the_tables_use_and_a_rerun_embeds_nothing(two: dict, capsys: pytest.CaptureFixture) -> None:
    args = ["cache", "prune", "--cache-dir", str(two["cache"]), "--tables", str(two["tables"])]
    assert main([*args, "--keep-fingerprints-in-use", "--dry-run"]) == 0
    assert f"would remove {two['old']}" in capsys.readouterr().out
    assert {p.name for p in two["cache"].iterdir()} == {two["used"], two["old"], "_resolved"}  # dry run: nothing gone

    assert main([*args, "--keep-fingerprints-in-use"]) == 0
    assert "removed 1 fingerprints" in capsys.readouterr().out
    assert {p.name for p in two["cache"].iterdir()} == {two["used"], "_resolved"}
    again = embed(two["prepared"], USED, two["tables"] / "imgs" / "again", options=two["options"])
    assert again.from_cache == 36 and again.stats.computed == 0


def test_prune_by_age_and_clear(two: dict) -> None:
    old_dir = two["cache"] / two["old"]
    week_ago = time.time() - 7 * 86400
    for segment in old_dir.glob("seg-*"):
        os.utime(segment, (week_ago, week_ago))
    result = prune(two["cache"], older_than_days=3)
    assert [e.fingerprint for e in result.removed] == [two["old"]] and not old_dir.exists()
    assert [e.fingerprint for e in result.kept] == [two["used"]]
    assert (two["cache"] / "_resolved").is_dir()  # what each spec resolved to (not a fingerprint)
    assert [e.fingerprint for e in clear(two["cache"]).removed] == [two["used"]]
    assert list(two["cache"].iterdir()) == []


def test_nothing_is_deleted_under_a_running_embed(two: dict) -> None:
    busy = two["cache"] / two["old"]
    with hold_lock(busy, wait=True):  # what a running embed holds (flock: another open file conflicts)
        result = clear(two["cache"])
    assert [e.fingerprint for e in result.busy] == [two["old"]] and busy.exists()
    assert [e.fingerprint for e in result.removed] == [two["used"]]


def test_an_embed_that_held_a_cache_before_clear_writes_into_a_fresh_folder(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp", meta={"backbone": "x"})
    clear(tmp_path)
    assert not cache.dir.exists()
    with cache.lock(), cache.open_segment() as segment:
        segment.append(["a"], {"n|avg": np.ones((1, 3), np.float32)})
    cache.scan()
    assert cache.contents() == (("n|avg",), 1, 1)
    assert json.loads((cache.dir / "meta.json").read_text()) == {"backbone": "x"}


def test_prune_must_be_told_what_to_keep(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tmp_path)]) == 2
    assert "--keep-fingerprints-in-use" in capsys.readouterr().err
    assert main(["cache", "info", "--older-than", "x"]) == 2
