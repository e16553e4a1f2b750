"""The tfidf text baseline: fitted on the train split only, a fixed width, its fit in the fingerprint, and the
same tables, heads and predict as any backbone (SYNTHETIC texts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headstart.cli import main
from headstart.data import prepare_dataset
from headstart.data.tables import load_embeddings
from headstart.features.engine import EmbedOptions, embed
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.tfidf import WIDTH, fit_spec
from headstart.features.weights import WeightsError
from tests.features.provider_models import synthetic_texts


def _embed(prepared: pd.DataFrame, tmp_path: Path, name: str) -> object:
    options = EmbedOptions(num_workers=0, cache_dir=tmp_path / "cache")
    result = embed(prepared, BackboneSpec("tfidf", None), single_file=tmp_path / f"{name}.parquet", options=options)
    return load_embeddings(result.tables["tfidf"])


def test_tfidf_is_fitted_on_train_only_and_its_fit_is_in_the_fingerprint(tmp_path: Path) -> None:
    csv = synthetic_texts(tmp_path / "t.csv", per_class=20)
    prepared = prepare_dataset(str(csv), text_column="text")
    table = _embed(prepared, tmp_path, "a")
    assert table.X.shape == (60, WIDTH) and table.X.dtype == np.float32
    assert np.allclose(np.linalg.norm(table.X, axis=1), 1.0, atol=1e-5)
    prov = table.provenance
    assert prov["backbone"] == "tfidf" and prov["modality"] == "text" and prov["weights"].endswith(".npz")
    assert Path(prov["weights"]).name == f"tfidf-{prov['weights_sha256'][:16]}.npz"
    # another test text does not change the fit; another train text does
    test_row = prepared.index[prepared["split"] == "test"][0]
    train_row = prepared.index[prepared["split"] == "train"][0]
    fitted = fit_spec(BackboneSpec("tfidf", None), prepared, tmp_path / "fits").weights
    for row, same in ((test_row, True), (train_row, False)):
        changed = prepared.copy()
        changed.loc[row, "image"] = "an unseen storm of cheese".encode()
        refit = fit_spec(BackboneSpec("tfidf", None), changed, tmp_path / "fits").weights
        assert (refit == fitted) is same
    again = _embed(prepared, tmp_path, "b")  # the same fit again: from the cache, the same bytes
    np.testing.assert_array_equal(again.X, table.X)
    other = _embed(prepare_dataset(str(csv), text_column="text", seed=1), tmp_path, "c")
    assert other.provenance["base_fingerprint"] != prov["base_fingerprint"]


def test_tfidf_goes_through_fit_and_predict_like_any_backbone(tmp_path: Path) -> None:
    csv = synthetic_texts(tmp_path / "t.csv", per_class=20)
    run = ["--text-column", "text", "--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    assert main(["embed", str(csv), "--backbone", "tfidf", "-o", str(tmp_path / "e.parquet"), *run]) == 0
    assert main(["fit", str(tmp_path / "e.parquet"), "--head", "logreg", "-o", str(tmp_path / "m")]) == 0
    fits = list(tmp_path.glob("tfidf-*.npz"))
    assert len(fits) == 1, "the fit is kept beside the table it made"
    shutil.rmtree(tmp_path / "cache")  # `headstart cache clear`: the head still embeds new texts with its fit
    new = tmp_path / "new.txt"
    new.write_text("goal team coach win season\n\nsoup bread dinner bake\n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "m"), str(new), "-o", str(out), "--workers", "0"]) == 0
    assert list(pd.read_csv(out)["predicted"]) == ["sport", "food"]


def test_tfidf_without_a_fit_says_how_to_get_one() -> None:
    with pytest.raises(WeightsError, match="fitted on a dataset's train split") as err:
        load_backbone(BackboneSpec("tfidf", None))
    assert "\n" not in str(err.value)
