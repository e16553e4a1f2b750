"""Loading a model directory runs no code from it: a pickle anywhere in it is refused, never loaded."""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from headstart.data.tables import load_embeddings
from headstart.heads.persist import ProvenanceMismatch, UnsafeModelError, load_head
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
    table = write_table(tmp_path / "t.parquet")
    fit_table(table, "ncm", {}, model, seeds=1, few_shot=())
    payload = np.empty(1, dtype=object)
    payload[0] = _TouchOnLoad(marker)
    with zipfile.ZipFile(model / "model.npz", "w") as archive:  # a pickled object array where the arrays go
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, payload, allow_pickle=True)
        archive.writestr("a0.npy", buffer.getvalue())
    (model / "model.joblib").write_bytes(pickle.dumps(_TouchOnLoad(marker)))  # and a pickle beside it

    result = run(["predict", model, "--embeddings", table], tmp_path)

    line = one_line_error(result)
    assert "model.json is not a readable headstart head" in line and "fit it again" in line, line
    assert not marker.exists()
    with pytest.raises(ProvenanceMismatch, match="Object arrays cannot be loaded"):
        load_head(model)
    assert not marker.exists()


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
        X = load_embeddings(table).X
        assert (loaded.estimator.predict(X) == evaluation.model.predict(X)).all(), head
        assert sorted(p.name for p in (tmp_path / head).iterdir()) == [
            "metrics.json",
            "model.json",
            "model.npz",
            "predictions.csv",
        ]
