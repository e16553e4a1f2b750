"""dvc.yaml and the code agree: the same paths, existing modules, params that exist."""

from __future__ import annotations

import importlib
import re

import yaml

from headstart.workflow import layout
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _stage(name: str) -> dict:
    stage = DVC["stages"][name]
    return stage.get("do", stage)


def test_stage_commands_name_existing_entry_points() -> None:
    for name in DVC["stages"]:
        module = _stage(name)["cmd"].split()[2]
        assert callable(importlib.import_module(module).main)  # each stage is `python -m <module> ...`


def test_outputs_are_where_the_layout_says() -> None:
    ds, bb, head = "${item.dataset}", "${item.backbone}", "${item.head}"
    assert _stage("prepare")["outs"] == [str(layout.prepared("${key}"))]
    embed = _stage("embed")
    assert embed["outs"][0] == str(layout.embeddings_dir(ds, bb))
    assert embed["outs"][1] == {str(layout.timings("embed", ds, bb)): {"cache": False}}
    assert list(embed["metrics"][0]) == [str(layout.embed_metrics(ds, bb))]
    fit = _stage("fit")  # one stage per dataset x backbone x head
    assert fit["outs"][0] == str(layout.head_models(ds, bb, head))
    assert fit["outs"][1] == str(layout.results(ds, bb, head))
    assert fit["outs"][2] == {str(layout.confusion_plots(ds, bb, head)): {"cache": False}}
    assert fit["outs"][3] == {str(layout.timings("heads", ds, bb, head)): {"cache": False}}
    assert list(fit["metrics"][0]) == [str(layout.head_metrics(ds, bb, head))]
    assert str(layout.embeddings_dir(ds, bb)) in fit["deps"] and str(layout.head_settings(head)) in fit["deps"]
    assert {str(layout.timings("finetune", ds, bb)): {"cache": False}} in _stage("finetune")["outs"]
    for name in DVC["stages"]:  # nothing persists: DVC removes a stage's outputs before it runs
        assert "persist" not in str(_stage(name).get("outs", [])), name
    report = _stage("report")
    assert str(layout.REPORT) in [next(iter(o)) for o in report["outs"]]
    assert str(layout.report_settings()) in report["deps"]
    assert _stage("settings")["outs"] == [{str(layout.SETTINGS_DIR): {"cache": False}}]
    assert str(layout.settings_file(ds, bb)) in embed["deps"]
    assert str(layout.transfer_settings("${key}")) in _stage("transfer")["deps"]
    robustness = _stage("robustness")
    assert robustness["outs"] == [{str(layout.robustness_results("${key}")): {"cache": False}}]
    assert list(robustness["metrics"][0]) == [str(layout.robustness_metrics("${key}"))]
    assert "models/${key}" in robustness["deps"] and "embeddings/${key}" in robustness["deps"]
    assert str(layout.robustness_settings()) in robustness["deps"]


def _lookup(dotted: str) -> object:
    node = PARAMS
    for part in dotted.split("."):
        node = node[part]
    return node


def test_every_stage_param_exists_in_params_yaml() -> None:
    names = {
        "${item.dataset}": next(iter(PARAMS["datasets"])),
        "${item.backbone}": next(iter(PARAMS["backbones"])),
        "${item.head}": next(iter(PARAMS["heads"])),
    }
    for name in DVC["stages"]:
        foreach = DVC["stages"][name].get("foreach", "")
        names["${key}"] = next(iter(PARAMS[foreach.strip("${}")])) if foreach else ""
        for param in _stage(name).get("params", []):
            for placeholder, value in names.items():
                param = param.replace(placeholder, value)
            param = re.sub(r"\$\{([\w.]+)\}", lambda m: str(_lookup(m.group(1))), param)  # params.yaml's values
            node = PARAMS
            for part in param.split("."):
                assert part in node, f"stage {name} reads params.yaml key {param}, which does not exist"
                node = node[part]


def test_no_stage_depends_on_timings_and_no_metrics_file_is_one() -> None:
    for name in DVC["stages"]:
        stage = _stage(name)
        assert not [d for d in stage.get("deps", []) if d.startswith("timings")], name
        metrics = [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]
        assert not [m for m in metrics if m.startswith("timings")], name


def test_only_the_settings_stage_lists_params() -> None:
    """DVC parses params.yaml once per stage that lists params on every `dvc repro`: every other stage depends on
    its settings file (the finetune file leaves out which datasets and backbones are fine-tuned)."""
    assert [name for name in DVC["stages"] if "params" in _stage(name)] == ["settings"]
    assert "settings/finetune.json" in _stage("finetune")["deps"]
    assert "settings/prepare-${key}.json" in _stage("prepare")["deps"]
    assert str(layout.embed_run_settings()) not in str(DVC)  # how the engine runs changes no output
    from headstart.workflow.config import load_config
    from headstart.workflow.settings import finetune_settings, plain

    finetune = plain(finetune_settings(load_config(REPO / "params.yaml")))
    assert "datasets" not in finetune and finetune["settings"]["epochs"] == 8 and finetune["probe"]["kind"] == "logreg"


def test_embed_settings_do_not_depend_on_run_only_settings() -> None:
    params = _stage("settings")["params"]
    assert "embed.decode" in params and "embed.on_error" in params
    assert "embed.batch_size" in params and "embed.device" in params  # they change the arithmetic
    assert "embed" not in params and "embed.num_workers" not in params and "embed.engine" not in params
    import dataclasses

    from headstart.workflow.settings import EmbedOutput

    keys = [f"embed.{f.name}" for f in dataclasses.fields(EmbedOutput)]
    assert [p for p in params if p.startswith("embed.")] == keys


def test_every_stage_depends_on_the_source_it_runs() -> None:
    """This repository's pipeline: each stage names its own files and the library folders it computes with, so
    "I edit X, these stages rerun" can be read here (docs/reruns.md)."""
    for name in DVC["stages"]:
        stage = _stage(name)
        module = stage["cmd"].split()[2]
        assert module.replace(".", "/") + ".py" in stage["deps"], name
        for dep in (d for d in stage["deps"] if d.startswith("headstart/")):
            assert (REPO / dep).exists(), f"stage {name} depends on {dep}, which does not exist"
    deps = {name: set(_stage(name)["deps"]) for name in DVC["stages"]}
    assert "headstart/heads" in deps["fit"] and "headstart/heads" not in deps["embed"] | deps["prepare"]
    assert "headstart/features" in deps["embed"] and "headstart/features" not in deps["fit"]
    assert "headstart/report" in deps["report"] and "headstart/data" in deps["prepare"]

