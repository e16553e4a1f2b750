"""params.yaml is parsed once into frozen dataclasses; unknown keys and bad values name themselves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from headstart.pipeline.config import ConfigError, load_config, parse_config
from tests.conftest import REPO

BASE = {"datasets": {"d": {"source": "digits"}}, "backbones": {"b": {"arch": "mobilenet_v2"}}, "heads": {"knn": {}}}


def test_the_repository_params_parse() -> None:
    cfg = load_config(REPO / "params.yaml")
    assert cfg.backbones["mobilenet_v2"].layers == ("features.13", "default")
    assert cfg.backbones["mobilenet_v2"].weights == "IMAGENET1K_V1"
    assert cfg.backbones["pixels"].weights is None
    assert set(cfg.heads) >= {"knn", "logreg", "svm", "ncm"}
    assert cfg.evaluate.few_shot == (1, 2, 5, 10, 20, "all")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed.batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"datasets": {"d": {"source": "digits", "sorce": 1}}}, "unknown key 'datasets.d.sorce'.*valid keys here"),
        ({"backbones": {"b": {"arch": "resnet18", "layer": "x"}}}, "unknown key 'backbones.b.layer'"),
        ({"embed": {"batchsize": 3}}, "unknown key 'embed.batchsize'"),
        ({"evaluation": {}}, "unknown key 'evaluation'"),
        ({"embed": {"batch_size": "big"}}, "embed.batch_size must be int or auto, got 'big'"),
        ({"embed": {"on_error": "ignore"}}, "embed.on_error must be one of 'skip', 'raise'"),
        ({"backbones": {"b": {"precision": "fp8"}}}, "backbones.b.precision must be one of"),
        ({"datasets": {"d": {"source": "digits", "split": {"val": 0.6, "test": 0.5}}}}, "must leave room for train"),
        ({"evaluate": {"few_shot": [1, "most"]}}, "evaluate.few_shot\\[1\\] must be"),
        ({"heads": {}}, "needs a non-empty 'heads' section"),
    ],
)
def test_bad_params_name_the_key(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **patch})


def test_weights_none_means_random_and_a_head_may_reuse_a_kind() -> None:
    cfg = parse_config(
        {
            **BASE,
            "backbones": {"b": {"arch": "resnet18", "weights": "none"}},
            "heads": {"knn_l2": {"head": "knn", "metric": "l2"}},
        }
    )
    assert cfg.backbones["b"].weights is None
    assert cfg.heads["knn_l2"].head == "knn" and cfg.heads["knn_l2"].params["metric"] == "l2"
    with pytest.raises(ConfigError, match="heads.svm is not in params.yaml; known heads: knn_l2"):
        cfg.head("svm")


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("datasets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE))
    assert load_config(tmp_path / "params.yaml").dataset("d").source == "digits"
