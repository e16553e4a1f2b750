"""The report package renders Markdown, figures and plot data from results records, and nothing else."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from headstart.report.tables import markdown_table, render_markdown, rows_from_results
from headstart.report.transfer import transfer_markdown
from headstart.workflow.fit import fit_table
from headstart.workflow.report import write_report
from tests.heads.test_evaluate import _table


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("results")
    table = _table(tmp / "flatten.parquet", "flatten")
    out = []
    for head, params in (("knn", {"k": [1, 5]}), ("ncm", {})):
        _, record = fit_table(table, head, params, tmp / head, seeds=2, few_shot=(1, 5, "all"))
        result = {"dataset": "clusters", "backbone": "pixels", "head": head, "kind": head}
        out.append({**result, "layers": {"flatten": record}})
    finetune = [
        {
            "dataset": "clusters",
            "backbone": "pixels",
            "unfrozen": 2,
            "unfrozen_blocks": 2,
            "test_accuracy": 0.99,
            "probe_test_accuracy": 0.9,
            "epochs": 3,
            "best_epoch": 2,
        }
    ]
    return {"heads": out, "finetune": finetune, "transfer": []}


def test_markdown_has_a_row_per_head_best_in_bold_and_no_timings(results: dict) -> None:
    rows = rows_from_results(results["heads"])
    text = render_markdown(rows, finetune=results["finetune"], protocol={"seeds": 2})
    lines = text.splitlines()
    assert "| backbone | layer | head | accuracy | balanced acc. | macro-F1 | 1-shot | 5-shot | chosen on val |" in text
    assert [line.split(" | ")[2] for line in lines if line.startswith("| pixels |")] == ["knn", "ncm"]
    assert "Chosen by **accuracy** on val." in text
    best = max(rows, key=lambda r: r.val_score)  # chosen on val, never on test
    low, high = best.interval("accuracy")
    assert low <= best.metric("accuracy") <= high
    assert (
        f"Best (by val accuracy): **{best.label}** with test accuracy {best.metric('accuracy'):.4f} "
        f"[{low:.3f}, {high:.3f}]" in text
    )
    assert ") (seeds)" not in markdown_table(rows) and "seed (none here)" in text  # knn, ncm: deterministic
    assert "fit s" not in text and "ms/img" not in text and "training s" not in text
    assert "| clusters | pixels | 2 | **0.9900** | 0.9000 |" in text
    assert "![Few-shot curves" in text and "## Fine-tuning" in text


def test_write_report_writes_figures_and_plot_data_the_same_bytes_twice(results: dict, tmp_path: Path) -> None:
    text = write_report(results, tmp_path / "a", protocol={"seeds": 2})
    write_report(results, tmp_path / "b", protocol={"seeds": 2})
    assert (tmp_path / "a" / "heads.md").read_text() == text
    for name in ("heads.md", "fewshot.png", "confusion.png", "plots/fewshot.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "fewshot.png").read_bytes().startswith(b"\x89PNG")
    with open(tmp_path / "a" / "plots" / "fewshot.csv") as handle:
        points = list(csv.DictReader(handle))
    assert len(points) == 2 * 3  # two heads x three few-shot points
    assert {p["head"] for p in points} == {"knn", "ncm"}
    assert all(float(p["accuracy_low"]) <= float(p["accuracy_mean"]) <= float(p["accuracy_high"]) for p in points)
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.endswith(".tmp")]


def test_transfer_markdown_names_the_domains_and_the_forgetting() -> None:
    rows = [
        {"head": "knn", "regime": "source only", "source_test": 0.9, "target_test": 0.5},
        {"head": "knn", "regime": "target only", "source_test": 0.6, "target_test": 0.95},
        {"head": "knn", "regime": "source + target", "source_test": 0.88, "target_test": 0.93},
        {"head": "knn", "regime": "source -> target", "source_test": 0.8, "target_test": 0.9},
    ]
    text = transfer_markdown(rows, "digits", "inverted", 2)
    assert "| knn | digits, then 2 epoch(s) on inverted | 80.0% | 90.0% |" in text
    assert "| knn | digits + inverted | 88.0% | 93.0% |" in text
    assert "knn forgets 10.0 points of digits when adapted (90.0% -> 80.0%) and gains 40.0 on inverted" in text


def _row(head: str, value: float, low: float, high: float, val: float, select_by: str = "accuracy"):
    from headstart.report.tables import ReportRow

    record = {
        "metrics": {"accuracy": value, "balanced_accuracy": value},
        "test_intervals": {k: {"low": low, "high": high} for k in ("accuracy", "balanced_accuracy")},
        "val_score": val,
        "select_by": select_by,
        "params": {},
        "per_class": {},
    }
    return ReportRow("d", "bb", "l", head, record)


def test_bold_marks_every_row_whose_interval_overlaps_the_best_or_none() -> None:
    from headstart.report.tables import best_row

    rows = [_row("a", 0.95, 0.93, 0.97, 0.90), _row("b", 0.94, 0.92, 0.96, 0.99), _row("c", 0.80, 0.77, 0.83, 0.5)]
    table = markdown_table(rows)
    assert "**0.9500 [0.930, 0.970]**" in table and "**0.9400 [0.920, 0.960]**" in table
    assert "| 0.8000 [0.770, 0.830] |" in table
    assert best_row(rows).head == "b"  # the val score chooses, not the higher test score of a
    overlapping = [_row("a", 0.95, 0.90, 0.99, 0.9), _row("b", 0.94, 0.89, 0.98, 0.8)]
    assert "**" not in markdown_table(overlapping)  # the test split cannot tell them apart: bold none


def test_the_first_column_follows_the_selection_metric() -> None:

    rows = [_row("a", 0.9, 0.8, 0.95, 0.9, "balanced_accuracy"), _row("b", 0.7, 0.6, 0.75, 0.8, "balanced_accuracy")]
    assert markdown_table(rows).splitlines()[0].startswith("| backbone | layer | head | balanced acc. | accuracy |")


def test_few_shot_cells_carry_the_spread_over_subsets(results: dict) -> None:
    rows = rows_from_results(results["heads"])
    table = markdown_table(rows)
    for row in rows:
        spread = row.few_shot_spread(1)
        point = next(p for p in row.record["few_shot"] if p["n"] == 1)
        assert spread == pytest.approx((point["accuracy_high"] - point["accuracy_low"]) / 2)
        assert f"{row.few_shot(1):.3f} ±{spread:.3f}" in table  # 2 seeded subsets of 1 image per class differ
    assert rows[0].few_shot_spread("all") is None  # one subset: all the images, no spread to show
