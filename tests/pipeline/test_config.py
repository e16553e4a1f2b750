"""params.yaml is parsed once into frozen dataclasses; unknown keys and bad values name themselves."""

from __future__ import annotations

import json

import dataclasses
from pathlib import Path

import pytest
import yaml

from headstart.workflow.config import ConfigError, load_config, parse_config
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
        # head parameters are checked against what each head declares, at load time
        ({"heads": {"knn": {"kk": 5}}}, "heads.knn.kk: 5 is not a parameter of head 'knn'; its parameters: k "),
        ({"heads": {"knn": {"k": 0}}}, "heads.knn.k must be an integer >= 1, got 0"),
        ({"heads": {"knn": {"k": [5, "x"]}}}, "heads.knn.k must be an integer >= 1, got 'x'"),
        ({"heads": {"svm": {"kernel": "poly"}}}, "heads.svm.kernel must be one of 'linear', 'rbf', got 'poly'"),
        ({"heads": {"lr": {"head": "logreg", "C": {"logspace": [-1, 1]}}}}, "heads.lr.C: logspace takes"),
        ({"heads": {"forest": {}}}, "heads.forest: unknown head 'forest'; known heads: knn, logreg, logreg_stream, ncm, svm"),
        # every section's values, with the dotted key, the bad value and what is allowed
        ({"evaluate": {"seeds": 0}}, "evaluate.seeds must be at least 1, got 0"),
        ({"evaluate": {"few_shot": [0, "all"]}}, "evaluate.few_shot\\[0\\] must be a number of images per class >= 1"),
        ({"finetune": {"epochs": -1}}, "finetune.epochs must be a positive integer, got -1"),
        ({"finetune": {"unfreeze": -2}}, "finetune.unfreeze must be a number of blocks >= 0 or all, got -2"),
        ({"finetune": {"epoch": 3}}, "unknown key 'finetune.epoch'.*epochs"),
        ({"embed": {"batch_size": -1}}, "embed.batch_size must be a positive integer or auto, got -1"),
        ({"embed": {"num_workers": -1}}, "embed.num_workers must be an integer >= 0 or auto, got -1"),
        (
            {"backbones": {"b": {"pooling": "mean"}}},
            "backbones.b.pooling 'mean' is not one of avg, max, avgmax, gem, cls",
        ),
        ({"backbones": {"b": {"pooling": ["avg", "sum"]}}}, "backbones.b.pooling 'sum' is not one of"),
        ({"backbones": {"b": {"image_size": 0}}}, "backbones.b.image_size must be a positive integer"),
        (
            {"datasets": {"d": {"source": "digits", "split": {"val": 1.5}}}},
            "datasets.d.split.val must be in \\[0, 1\\)",
        ),
        # names that become paths stay plain (issue 14.6)
        ({"datasets": {"../../../x": {"source": "digits"}}}, "datasets.../../../x: '../../../x' is not a plain name"),
        ({"backbones": {"a/b": {"arch": "resnet18"}}}, "backbones.a/b: 'a/b' is not a plain name"),
        ({"heads": {"..": {"head": "knn"}}}, "heads...: '..' is not a plain name"),
        # references between sections
        ({"transfer": {"t": {"source": "d", "target": "e", "backbone": "b"}}}, "transfer.t.target names 'e'"),
        (
            {"transfer": {"t": {"source": "d", "target": "d", "backbone": "b", "heads": ["knn", "lgreg"]}}},
            "transfer.t.heads\\[1\\] names 'lgreg', which is not in heads: knn",
        ),
        (
            {
                "transfer": {
                    "t": {"source": "d", "target": "d", "backbone": "b", "layer": "features.3", "heads": ["knn"]}
                }
            },
            "transfer.t.layer names 'features.3', which backbones.b does not embed; known: default",
        ),
        ({"finetune": {"datasets": ["d"], "backbones": ["x"]}}, "finetune.backbones\\[0\\] names 'x'"),
        (
            {"backbones": {"p": {"arch": "pixels"}}, "finetune": {"datasets": ["d"], "backbones": ["p"]}},
            "finetune.backbones\\[0\\] names 'p' \\(arch pixels\\), which has nothing to fine-tune",
        ),
        ({"finetune": {"datasets": ["d"], "backbones": ["b"]}}, "finetune starts from a linear probe; add a logreg"),
        ({"finetune": {"probe_head": "knn"}}, "finetune.probe_head names 'knn', which is not a linear probe"),
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
    assert cfg.heads["knn_l2"].kind == "knn" and cfg.heads["knn_l2"].params["metric"] == "l2"
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


def test_the_config_holds_the_library_types_frozen_all_the_way_down() -> None:
    from headstart.features.spec import BackboneSpec, EmbedOptions, FinetuneSettings
    from headstart.heads.spec import HeadSpec

    cfg = load_config(REPO / "params.yaml")
    assert isinstance(cfg.backbones["mobilenet_v2"], BackboneSpec) and isinstance(cfg.embed, EmbedOptions)
    assert isinstance(cfg.heads["logreg"], HeadSpec) and isinstance(cfg.finetune.settings, FinetuneSettings)
    assert cfg.finetune.settings.seed == cfg.seed and cfg.finetune.probe_head == "logreg"
    logspace = cfg.heads["logreg"].params["C"]["logspace"]
    assert logspace == (-4, 4, 17)
    with pytest.raises(TypeError):
        cfg.heads["logreg"].params["C"]["logspace"] = (0, 1, 2)  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.heads["knn"].params["k"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.backbones["x"] = cfg.backbones["pixels"]  # type: ignore[index]


def test_the_probe_head_defaults_to_the_first_linear_probe() -> None:
    cfg = parse_config(
        {**BASE, "heads": {"knn": {}, "lr": {"head": "logreg"}}, "finetune": {"datasets": ["d"], "backbones": ["b"]}}
    )
    assert cfg.finetune.probe_head == "lr"


def _with_override(override: object) -> dict:
    return {
        **BASE,
        "datasets": {"d": {"source": "digits"}, "photos": {"source": "digits", "backbones": override}},
        "backbones": {"b": {"arch": "mobilenet_v2", "layers": ["features.13", "default"], "image_size": 64}},
    }


def test_a_dataset_overrides_its_own_backbone_settings_only() -> None:
    cfg = parse_config(_with_override({"b": {"image_size": 224, "pooling": ["avg", "max"], "layers": "default"}}))
    own = cfg.backbone("b", "photos")
    assert (own.image_size, own.poolings, own.layers, own.arch) == (224, ("avg", "max"), ("default",), "mobilenet_v2")
    assert cfg.backbone("b", "d") == cfg.backbone("b") and cfg.backbone("b").image_size == 64
    assert cfg.backbone("b").layers == ("features.13", "default")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"b": {"arch": "resnet18"}}, "unknown key 'datasets.photos.backbones.b.arch'.*image_size, layers, pooling"),
        ({"x": {"image_size": 224}}, "datasets.photos.backbones.x: no backbone 'x' in params.yaml's backbones; known: b"),
        ({"b": {"image_size": -1}}, "datasets.photos.backbones.b.image_size must be a positive integer"),
        ({"b": {"pooling": "mean"}}, "datasets.photos.backbones.b.pooling 'mean' is not one of"),
        ([224], "datasets.photos.backbones must be a mapping"),
    ],
)
def test_bad_overrides_name_the_dotted_key(override: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_with_override(override))


def test_transfer_refuses_datasets_that_embed_a_backbone_differently() -> None:
    raw = _with_override({"b": {"image_size": 224}})
    raw["transfer"] = {"t": {"source": "d", "target": "photos", "backbone": "b", "heads": ["knn"]}}
    with pytest.raises(ConfigError, match="transfer.t: datasets.d and datasets.photos embed with different settings"):
        parse_config(raw)


def test_the_settings_stage_writes_each_pair_and_the_same_bytes_when_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headstart.pipeline import settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_with_override({"b": {"image_size": 224}})))
    assert settings.main([]) == 0
    own = yaml.safe_load((tmp_path / "settings/photos/b.json").read_text())
    plain = (tmp_path / "settings/d/b.json").read_bytes()
    assert own["spec"]["image_size"] == 224 and own["overridden"] == ["image_size"]
    assert yaml.safe_load(plain)["spec"]["image_size"] == 64 and yaml.safe_load(plain)["overridden"] == []
    settings.main([])
    assert (tmp_path / "settings/d/b.json").read_bytes() == plain


def test_the_settings_stage_writes_every_file_once_and_removes_the_stale_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headstart.pipeline import settings
    from headstart.workflow import layout

    monkeypatch.chdir(tmp_path)
    raw = {**_with_override({"b": {"image_size": 224}}), "heads": {"knn": {"k": 5}, "ncm": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert settings.main([]) == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "settings").rglob("*.json"))
    assert written == [
        "settings/d/b.json", "settings/embed.json", "settings/finetune.json", "settings/heads/knn.json",
        "settings/heads/ncm.json", "settings/photos/b.json", "settings/prepare-d.json", "settings/prepare-photos.json",
        "settings/report.json", "settings/robustness.json",
    ]  # fmt: skip
    knn = json.loads(layout.head_settings("knn").read_text())
    assert knn["head"] == {"name": "knn", "kind": "knn", "params": {"k": 5}} and knn["evaluate"]["seeds"] == 5
    mtime = layout.settings_file("d", "b").stat().st_mtime_ns
    ncm = layout.head_settings("ncm").read_bytes()
    raw["heads"] = {"knn": {"k": 7}, "ncm": {}}
    del raw["datasets"]["photos"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    settings.main([])
    assert json.loads(layout.head_settings("knn").read_text())["head"]["params"]["k"] == 7
    assert layout.head_settings("ncm").read_bytes() == ncm  # another head's file: its fit stages do not rerun
    assert layout.settings_file("d", "b").stat().st_mtime_ns == mtime  # unchanged: not rewritten, so not re-hashed
    assert not (tmp_path / "settings/photos/b.json").exists()  # a dataset no longer in params.yaml
    assert not (tmp_path / "settings/prepare-photos.json").exists()


def test_each_stage_reads_back_the_settings_params_yaml_implies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headstart.features.spec import EmbedOptions
    from headstart.workflow import layout
    from headstart.workflow import settings as s

    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / "params.yaml")
    s.write_all(cfg)
    assert s.read_settings(s.EmbedSettings, layout.settings_file("digits", "mobilenet_v2")) == s.embed_settings(
        cfg, "digits", "mobilenet_v2"
    )
    for head in cfg.heads:
        assert s.read_settings(s.FitSettings, layout.head_settings(head)) == s.fit_settings(cfg, head)
    imbalanced = s.read_settings(s.PrepareSettings, layout.prepare_settings("digits_imbalanced"))
    assert imbalanced == s.prepare_settings(cfg, "digits_imbalanced") and imbalanced.dataset.imbalance == (("3", 0.1),)
    for name in cfg.transfer:
        assert s.read_settings(s.TransferSettings, layout.transfer_settings(name)) == s.transfer_settings(cfg, name)
    assert s.read_settings(s.FinetuneStageSettings, layout.finetune_settings()) == s.finetune_settings(cfg)
    assert s.read_settings(s.RobustnessSettings, layout.robustness_settings()) == s.robustness_settings(cfg)
    assert s.read_settings(s.ReportSettings, layout.report_settings()) == s.report_settings(cfg)
    assert s.read_settings(EmbedOptions, layout.embed_run_settings()) == cfg.embed
    with pytest.raises(ConfigError, match=r"settings/heads/nope.json not found; run `dvc repro`"):
        s.read_settings(s.FitSettings, layout.head_settings("nope"))


def test_transfer_settings_hold_only_the_heads_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headstart.pipeline import settings
    from headstart.workflow import layout

    monkeypatch.chdir(tmp_path)
    raw = {
        **BASE,
        "heads": {"knn": {"k": 5}, "logreg": {"C": {"logspace": [-2, 2, 5]}}, "svm": {"C": [0.1, 1.0]}},
        "transfer": {"t": {"source": "d", "target": "d", "backbone": "b", "heads": ["knn", "logreg"]}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert settings.main([]) == 0
    written = layout.transfer_settings("t").read_bytes()
    data = yaml.safe_load(written)
    assert [h["name"] for h in data["heads"]] == ["knn", "logreg"]
    assert data["heads"][1]["params"]["C"]["logspace"] == [-2, 2, 5]
    assert data["transfer"]["heads"] == ["knn", "logreg"] and data["transfer"]["source"] == "d"
    raw["heads"]["svm"]["C"] = [10.0]  # a head the transfer does not use: the same bytes, so it does not rerun
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    settings.main([])
    assert layout.transfer_settings("t").read_bytes() == written
    raw["heads"]["knn"]["k"] = 7
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    settings.main([])
    assert layout.transfer_settings("t").read_bytes() != written


def test_the_versions_stage_reads_only_the_datasets_and_tolerates_malformed_entries(tmp_path: Path) -> None:
    """The always-run stage does not check params.yaml (the settings stage does, and stops the pipeline)."""
    from headstart.workflow.sources import dataset_sources

    (tmp_path / "params.yaml").write_text(
        "datasets:\n  d: {source: digits, sorce: x}\n  bad: 3\n  nosource: {split: {val: 0.1}}\nheadz: {}\n"
    )
    assert list(dataset_sources(tmp_path / "params.yaml")) == ["d"]
    (tmp_path / "params.yaml").write_text("datasets: [\n")
    assert dataset_sources(tmp_path / "params.yaml") == {}
    assert dataset_sources(tmp_path / "missing.yaml") == {}
