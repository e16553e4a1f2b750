"""What the workflow keeps: quality in metrics, results and model directories (the same bytes for the same
inputs), timings and run counts in timings/ only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from headstart.report.tables import ReportRow
from headstart.workflow import layout
from headstart.workflow.config import load_config
from headstart.workflow.fit import fit_stage, fit_table
from headstart.workflow.records import is_timing, split_timings, write_embed_records
from headstart.workflow.report import report_stage, summary_metrics
from headstart.workflow.scaffold import render_dvc_yaml
from headstart.workflow.settings import ReportSettings, fit_settings
from tests.conftest import REPO
from tests.heads.test_evaluate import _table


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_model_directory_and_record_hold_no_timings(tmp_path: Path) -> None:
    evaluation, record = fit_table(
        _table(tmp_path / "t.parquet", "flatten"), "knn", {"k": [1, 5]}, tmp_path / "model", seeds=2, few_shot=(2,)
    )
    assert {"fit_seconds", "predict_ms_per_image"} <= set(evaluation.metrics)  # measured ...
    saved = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert {"accuracy", "balanced_accuracy", "macro_f1", "fewshot_2_accuracy"} <= set(saved)
    assert saved["accuracy_test_low"] <= saved["accuracy"] <= saved["accuracy_test_high"]
    assert f"val_{record['select_by']}" in saved and record["test_intervals"]["accuracy"]["method"] == "wilson"
    timing = {k for k in _keys(saved) | _keys(record) if is_timing(k)}
    assert not timing, timing  # ... but kept out of what DVC tracks
    assert record["per_seed"] and "accuracy" in record["per_seed"][0]


def test_split_timings_of_the_embed_stage() -> None:
    counts = {"images": 5, "embedded": 4, "failed": 1, "from_cache": 2, "run_computed": 3, "assemble_seconds": 0.1}
    quality, timings = split_timings(counts)
    assert quality == {"images": 5, "embedded": 4, "failed": 1}
    assert set(timings) == {"from_cache", "run_computed", "assemble_seconds"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    _table(tmp_path / layout.embeddings_dir("digits", "pixels") / "flatten.parquet", "flatten")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_fit_stage_twice_gives_the_same_bytes_and_timings_apart(project: Path) -> None:
    settings = fit_settings(load_config("params.yaml"), "knn")
    tracked = [
        layout.head_metrics("digits", "pixels", "knn"),
        layout.results("digits", "pixels", "knn"),
        layout.model_dir("digits", "pixels", "knn", "flatten") / "metrics.json",
        layout.model_dir("digits", "pixels", "knn", "flatten") / "predictions.csv",
        layout.confusion_plot("digits", "pixels", "knn", "flatten"),
    ]
    fit_stage(settings, "digits", "pixels")
    first = [p.read_bytes() for p in tracked]
    fit_stage(settings, "digits", "pixels")
    assert [p.read_bytes() for p in tracked] == first
    metrics = json.loads(tracked[0].read_text())["flatten"]
    assert "accuracy" in metrics and not [k for k in metrics if is_timing(k)]
    timings = json.loads(layout.timings("heads", "digits", "pixels", "knn").read_text())["flatten"]
    assert set(timings) == {"fit_seconds", "predict_ms_per_image", "selection_seconds"}
    write_embed_records("digits", "pixels", {"images": 300, "failed": 0, "run_wall_seconds": 1.5})
    assert json.loads(layout.embed_metrics("digits", "pixels").read_text()) == {"images": 300, "failed": 0}
    assert json.loads(layout.timings("embed", "digits", "pixels").read_text()) == {"run_wall_seconds": 1.5}


def test_the_report_stage_writes_one_selection_score_per_dataset_backbone_layer_and_head(project: Path) -> None:
    cfg = load_config("params.yaml")
    for head in ("knn", "ncm"):
        fit_stage(fit_settings(cfg, head), "digits", "pixels")
    report_stage(ReportSettings(datasets=("digits",), backbones=("pixels",), heads=("knn", "ncm"), seeds=1))
    summary = json.loads(layout.SUMMARY_METRICS.read_text())
    assert list(summary) == ["digits/pixels/flatten/knn", "digits/pixels/flatten/ncm"]
    for head in ("knn", "ncm"):
        record = json.loads(layout.results("digits", "pixels", head).read_text())["layers"]["flatten"]
        assert record["select_by"] == "accuracy"  # digits is balanced: heads are chosen by accuracy
        assert summary[f"digits/pixels/flatten/{head}"] == round(record["metrics"]["accuracy"], 6)
    stage = yaml.safe_load(render_dvc_yaml())["stages"]["report"]
    assert stage["metrics"] == [{str(layout.SUMMARY_METRICS): {"cache": False}}]  # what `dvc exp show` reads


def test_the_summary_scores_each_dataset_by_its_own_selection_metric() -> None:
    def row(dataset: str, head: str, select_by: str) -> ReportRow:
        record = {"metrics": {"accuracy": 0.9, "balanced_accuracy": 0.8}, "select_by": select_by}
        return ReportRow(dataset, "mobilenet_v2", "features.13", head, record)

    rows = [row("digits", "knn", "accuracy"), row("rare", "knn", "balanced_accuracy"), row("rare", "svm", "log_loss")]
    assert summary_metrics(rows) == {
        "digits/mobilenet_v2/features.13/knn": 0.9,
        "rare/mobilenet_v2/features.13/knn": 0.8,  # the dataset's metric, as the report's first score column
        "rare/mobilenet_v2/features.13/svm": 0.8,
    }
