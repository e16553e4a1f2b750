"""Bad input is one line that names the input and the fix, with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data.tables import TableError, load_embeddings
from headstart.heads.evaluate import SplitData, evaluate_head
from headstart.heads.knn import KNNClassifier
from headstart.heads.ncm import NearestClassMean
from headstart.heads.registry import list_heads
from tests.faults._helpers import one_line_error, run, write_table


def test_a_damaged_data_page_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.parquet", n_per_class=100, dim=32)
    data = bytearray(table.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0x5A for b in data[middle : middle + 8])  # flip bits in a float page
    table.write_bytes(bytes(data))

    with pytest.raises(TableError, match=r"t.parquet is damaged .*re-run the stage that wrote it"):
        load_embeddings(table)
    result = run(["fit", table, "--head", "knn", "-o", tmp_path / "model"], tmp_path)

    line = one_line_error(result)
    assert f"{table} is damaged" in line and "re-run the stage that wrote it" in line, line
    assert result.returncode == 2 and not (tmp_path / "model").exists()


@pytest.mark.parametrize("head", sorted(list_heads()))
def test_every_head_refuses_a_train_split_with_one_class(head: str, tmp_path: Path) -> None:
    table = load_embeddings(write_table(tmp_path / "t.parquet", classes=("only",)))
    data = SplitData.from_table(table, source="t.parquet")
    with pytest.raises(ValueError, match=r"the train split of t.parquet has only one class \('only'\)"):
        evaluate_head(head, {}, data, seeds=1, few_shot=())


@pytest.mark.parametrize("estimator", [KNNClassifier(), NearestClassMean()], ids=["knn", "ncm"])
def test_knn_and_ncm_no_longer_fit_one_class(estimator: object) -> None:
    with pytest.raises(ValueError, match="only one class"):
        estimator.fit(np.eye(4, dtype=np.float32), ["a"] * 4)  # type: ignore[attr-defined]


def test_fit_on_a_one_class_table_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.parquet", classes=("only",))
    result = run(["fit", table, "--head", "ncm", "-o", tmp_path / "model"], tmp_path)
    line = one_line_error(result)
    assert f"the train split of {table} has only one class" in line, line
    assert result.returncode == 2 and not (tmp_path / "model").exists()
