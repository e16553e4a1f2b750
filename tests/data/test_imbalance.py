"""An imbalanced dataset made from a balanced one; a class thinned to one image still gets its table."""

from __future__ import annotations

import pytest

from headstart.data.prepare import DatasetError, prepare_dataset
from headstart.workflow.config import ConfigError, parse_config


def test_imbalance_keeps_the_seeded_fraction_of_one_class():
    full = prepare_dataset("digits", name="digits")
    thin = prepare_dataset("digits", name="digits", imbalance={"3": 0.1})
    again = prepare_dataset("digits", name="digits", imbalance={"3": 0.1})
    threes = int((full["label"] == "3").sum())
    assert int((thin["label"] == "3").sum()) == round(threes * 0.1)
    assert (thin["label"] != "3").sum() == (full["label"] != "3").sum()  # the other classes are untouched
    assert thin["id"].tolist() == again["id"].tolist()
    assert set(thin["id"]) < set(full["id"])
    assert thin.attrs["headstart"]["imbalance"] == {"3": 0.1}
    # every class keeps images in each split, and the kept images keep their split
    assert set(thin.loc[thin["label"] == "3", "split"]) == {"train", "val", "test"}
    merged = thin.merge(full, on="id", suffixes=("", "_full"))
    assert (merged["split"] == merged["split_full"]).mean() > 0.95


def test_a_class_thinned_to_one_image_is_kept_in_train_and_named_in_the_log(caplog):
    with caplog.at_level("WARNING", logger="headstart.data.prepare"):
        frame = prepare_dataset("digits", name="digits", imbalance={3: 0.001})
    assert frame.loc[frame["label"] == "3", "split"].tolist() == ["train"]
    assert "'3' (no test image)" in caplog.text and "fit will leave them out" in caplog.text


def test_unknown_class_and_bad_fraction_are_one_line_errors():
    with pytest.raises(DatasetError, match="names class 'x'.*its classes: 0, 1"):
        prepare_dataset("digits", name="digits", imbalance={"x": 0.5})
    base = {"datasets": {"d": {"source": "digits"}}, "backbones": {"pixels": {}}, "heads": {"ncm": {}}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.imbalance\.3 must be a fraction in \(0, 1\], got 2"):
        parse_config({**base, "datasets": {"d": {"source": "digits", "imbalance": {3: 2}}}})
    cfg = parse_config({**base, "datasets": {"d": {"source": "digits", "imbalance": {3: 0.1}}}})
    assert dict(cfg.dataset("d").imbalance) == {"3": 0.1}
