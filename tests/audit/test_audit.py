"""`headstart audit` on a small digits collection with planted faults, as a user runs it: the planted label flips
and re-saved copies are found, the leakage-free score is computed, and the tables have the documented columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("cleanlab")
pytest.importorskip("imagehash")
pytest.importorskip("umap")

from headstart.cli import main  # noqa: E402
from headstart.data.tables.findings import read_findings  # noqa: E402
from headstart.workflow.audit import AuditError, AuditOptions  # noqa: E402
from tests.audit.plant import Planted, plant_digits  # noqa: E402


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Planted, Path]:
    """600 digits at 32 px (pixels backbone) with 18 train labels flipped and 10 test images re-saved into train,
    audited with the default map (UMAP) and the logreg head over a short C grid. Raw pixels put look-alike digits
    closer than MobileNetV2 does (natural pairs 4 bits apart reach cosine 0.98 here), so the hash threshold is the
    stricter 2 bits that these copies (0-2 bits) need, set as a user would with --hash-bits."""
    root = tmp_path_factory.mktemp("planted")
    planted = plant_digits(root)
    table = root / "emb.parquet"
    assert main(["embed", str(planted.manifest), "-o", str(table), "--backbone", "pixels", "--image-size", "16",
                 "--no-cache", "--workers", "0"]) == 0  # fmt: skip
    assert main(["audit", str(table), "-o", str(root / "audit"), "--set", "C=[0.01,0.1,1]",
                 "--hash-bits", "2"]) == 0  # fmt: skip
    return planted, root / "audit"


def test_planted_label_flips_are_found(audited: tuple[Planted, Path]) -> None:
    planted, out = audited
    issues = read_findings(out / "label_issues.parquet", "label_issues")
    assert list(issues.columns) == ["id", "path", "split", "label", "suggested", "score"]
    found = set(issues["path"]) & planted.flipped
    # measured: 15 of 18 flips among 26 flagged rows; raw 16x16 pixels make a weaker head (accuracy 0.92) than
    # MobileNetV2 (benchmarks/audit.py reaches recall 0.86 and precision 0.89 there)
    assert len(found) / len(planted.flipped) >= 0.8
    assert len(found) / len(issues) >= 0.5
    assert issues["score"].is_monotonic_decreasing


def test_planted_copies_are_found_and_leave_the_score(audited: tuple[Planted, Path]) -> None:
    planted, out = audited
    dups = read_findings(out / "duplicates.parquet", "duplicates")
    assert list(dups.columns)[:7] == ["id_a", "id_b", "path_a", "path_b", "split_a", "split_b", "similarity"]
    pairs = {frozenset(p) for p in zip(dups["path_a"], dups["path_b"])}
    planted_pairs = {frozenset(p) for p in planted.copies}
    assert planted_pairs <= pairs
    cross = dups[(dups["split_a"] == "test") != (dups["split_b"] == "test")]
    assert len(planted_pairs) / len(cross) >= 0.9
    summary = json.loads((out / "summary.json").read_text())
    assert summary["leaked"] == len(planted.copies)
    assert summary["metric"] == "accuracy" and 0.8 < summary["score"] <= 1
    assert summary["score_without_leaked"] is not None
    assert summary["thresholds"]["hash_bits"] == 2 and summary["thresholds"]["map"] == "umap"


def test_outputs_and_page(audited: tuple[Planted, Path]) -> None:
    _, out = audited
    outliers = read_findings(out / "outliers.parquet", "outliers")
    assert list(outliers.columns) == ["id", "path", "split", "label", "score"]
    page = (out / "index.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    thumbs = sorted((out / "thumbs").glob("*.png"))
    assert len(thumbs) >= 600  # every map point (all rows here) can show its image


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="map method"):
        AuditOptions(map_method="tsne")
    with pytest.raises(AuditError, match="cosine"):
        AuditOptions(cosine=1.5)
    assert main(["audit", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "out"), "--hash-bits", "x"]) == 2
