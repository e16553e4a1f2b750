"""Loading a model directory runs no code from it; an old pickle loads only with --trust-pickle."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import joblib
import pytest

from headstart.heads.persist import UnsafeModelError, load_head
from headstart.workflow.fit import fit_table
from tests.faults._helpers import one_line_error, run, write_table


class _TouchOnLoad:
    """Unpickling this creates a marker file: a harmless stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


def test_predict_refuses_a_pickle_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    model = tmp_path / "shared-model"
    model.mkdir()
    joblib.dump({"format": "headstart-head-v1", "estimator": _TouchOnLoad(marker)}, model / "model.joblib")
    table = write_table(tmp_path / "t.parquet")

    result = run(["predict", model, "--embeddings", table], tmp_path)

    line = one_line_error(result)
    assert "model.joblib is a pickle" in line and "--trust-pickle" in line, line
    assert not marker.exists()
    with pytest.raises(UnsafeModelError):
        load_head(model)
    assert not marker.exists()

    with pytest.raises((ValueError, KeyError)):  # the payload ran: it is not a head
        load_head(model, trust_pickle=True)
    assert marker.exists()


def test_a_model_json_that_names_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    fit_table(write_table(tmp_path / "t.parquet"), "ncm", {}, model, seeds=1, few_shot=())
    bundle = json.loads((model / "model.json").read_text())
    marker = tmp_path / "payload-ran"
    # a reduce-like payload would need a callable; the only things the format can name are classes to rebuild
    bundle["estimator"] = {"object": "pathlib.Path", "state": {"dict": [["_raw_paths", {"list": [str(marker)]}]]}}
    (model / "model.json").write_text(json.dumps(bundle))

    with pytest.raises(UnsafeModelError, match="pathlib.Path, which is not among the trusted types"):
        load_head(model)
    assert not marker.exists()


def test_a_saved_head_loads_and_predicts_like_the_fitted_one(tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.parquet")
    for head in ("knn", "logreg", "svm", "ncm"):
        evaluation, _ = fit_table(table, head, {}, tmp_path / head, seeds=1, few_shot=())
        loaded = load_head(tmp_path / head)
        from headstart.data.tables import load_embeddings

        X = load_embeddings(table).X
        assert (loaded.estimator.predict(X) == evaluation.model.predict(X)).all(), head
        assert sorted(p.name for p in (tmp_path / head).iterdir()) == [
            "metrics.json",
            "model.json",
            "model.npz",
            "predictions.csv",
        ]
