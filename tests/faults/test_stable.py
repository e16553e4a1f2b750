"""The same inputs give the same bytes in every file of a model directory (no timings inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headstart.workflow.fit import fit_table
from tests.faults._helpers import snapshot, write_table


@pytest.mark.parametrize("head", ["knn", "logreg", "svm", "ncm"])
def test_fitting_twice_gives_a_byte_identical_model_dir(head: str, tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.parquet")
    fit_table(table, head, {}, tmp_path / "one", seeds=2, few_shot=(1, "all"))
    fit_table(table, head, {}, tmp_path / "two", seeds=2, few_shot=(1, "all"))

    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert "accuracy" in metrics and not [k for k in metrics if "seconds" in k or "per_image" in k]
