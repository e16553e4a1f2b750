"""dvc.yaml and the code agree: the same paths, existing modules, params that exist."""

from __future__ import annotations

import importlib
import json
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
    # persist: DVC must not delete the table before the stage runs, or the stage's memo could never leave it alone
    assert _stage("prepare")["outs"] == [{str(layout.prepared("${key}")): {"persist": True}}]
    embed = _stage("embed")
    assert embed["outs"][0] == str(layout.embeddings_dir(ds, bb))
    assert embed["outs"][1] == {str(layout.timings("embed", ds, bb)): {"cache": False}}
    assert list(embed["metrics"][0]) == [str(layout.embed_metrics(ds, bb))]
    fit = _stage("fit")  # one stage per dataset x backbone for every head; outputs persist (kept heads)
    outs = [next(iter(o)) for o in fit["outs"]]
    assert outs[0] == str(layout.model_dir(ds, bb, head, "x").parent.parent)
    assert outs[1] == str(layout.results(ds, bb, head).parent)
    assert outs[2] == str(layout.confusion_plot(ds, bb, head, "x").parent.parent)
    assert fit["outs"][3] == {str(layout.timings("heads", ds, bb, head).parent): {"cache": False, "persist": True}}
    assert all(next(iter(o.values()))["persist"] for o in fit["outs"])
    assert {str(layout.timings("finetune", ds, bb)): {"cache": False}} in _stage("finetune")["outs"]
    assert list(fit["metrics"][0]) == [str(layout.head_metrics(ds, bb, head).parent)]
    assert str(layout.embeddings_dir(ds, bb)) in fit["deps"]
    report = _stage("report")
    assert str(layout.REPORT) in [next(iter(o)) for o in report["outs"]]
    # one settings stage writes the small files embed, fit and transfer depend on instead of listing params
    folder = layout.settings_file(ds, bb).parents[1]
    assert _stage("settings")["outs"] == [{str(folder): {"cache": False}}]
    assert layout.heads_settings().parent == folder and layout.transfer_settings("t").parent == folder
    assert str(layout.settings_file(ds, bb)) in embed["deps"] and "params" not in _stage("settings")["deps"]
    assert "params" not in embed and "params" not in _stage("embed_finetuned")  # all in the settings file
    fit = _stage("fit")
    assert str(layout.heads_settings()) in fit["deps"] and "params" not in fit and "params" not in _stage(
        "fit_finetuned"
    )
    assert str(layout.transfer_settings("${key}")) in _stage("transfer")["deps"]
    robustness = _stage("robustness")
    assert robustness["outs"] == [{str(layout.robustness_results("${key}")): {"cache": False}}]
    assert list(robustness["metrics"][0]) == [str(layout.robustness_metrics("${key}"))]
    assert "models/${key}" in robustness["deps"] and "embeddings/${key}" in robustness["deps"]


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
    assert "settings/robustness.json" in _stage("robustness")["deps"] and "settings" in _stage("report")["deps"]
    from headstart.workflow.config import load_config
    from headstart.workflow.settings import finetune_settings

    finetune = finetune_settings(load_config(REPO / "params.yaml"))
    assert "datasets" not in finetune["finetune"] and finetune["finetune"]["settings"]["epochs"] == 8
    assert finetune["probe"]["kind"] == "logreg"


def test_embed_settings_do_not_depend_on_run_only_settings() -> None:
    params = _stage("settings")["params"]
    assert "embed.decode" in params and "embed.on_error" in params
    assert "embed" not in params and "embed.batch_size" not in params and "embed.num_workers" not in params
    from headstart.workflow.settings import EMBED_KEYS

    assert [p for p in params if p.startswith("embed.")] == [f"embed.{k}" for k in EMBED_KEYS]


# modules a stage imports only while it runs (backbones are registered and built on first use)
_RUNTIME = {
    "headstart.pipeline.embed": [
        "headstart.features.pixels",
        "headstart.features.preprocess",
        "headstart.features.truncate",
        "headstart.features.pooling",
    ]
}


def _imported(module: str) -> set[str]:
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"for extra in {_RUNTIME.get(module, [])!r}: importlib.import_module(extra)\n"
        "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('headstart') and getattr(m, '__file__', None))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return {str(__import__("pathlib").Path(f).resolve().relative_to(REPO)) for f in out.split()}


def test_every_stage_lists_the_code_it_runs() -> None:
    modules = json.loads((REPO / "headstart-sources/code-modules.json").read_text())
    for name in DVC["stages"]:
        stage = _stage(name)
        module = stage["cmd"].split()[2]
        short = module.rsplit(".", 1)[1]
        assert f"headstart-sources/code/{short}.json" in stage["deps"], f"stage {name}: no digest of its code"
        imported = _imported(module)
        assert module.replace(".", "/") + ".py" in imported, f"stage {name} was not found importing itself"
        for path in sorted(imported):
            assert path in modules[short], f"stage {name} runs {path}, which code-modules.json does not list"


def test_the_versions_stage_writes_the_digests_of_each_modules_files(tmp_path, monkeypatch) -> None:
    from headstart.pipeline.versions import write_code

    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / "b.py").write_text("b = 1\n")
    (tmp_path / "map.json").write_text(json.dumps({"fit": ["a.py", "b.py"], "report": ["a.py"]}))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "gone.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    write_code("map.json", "code")
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == ["fit.json", "report.json"]
    fit, report = (tmp_path / "code/fit.json").read_bytes(), (tmp_path / "code/report.json").read_bytes()
    assert set(json.loads(fit)["files"]) == {"a.py", "b.py"}
    (tmp_path / "b.py").write_text("b = 2\n")  # a file only fit imports: fit's digests change, report's do not
    write_code("map.json", "code")
    assert (tmp_path / "code/fit.json").read_bytes() != fit and (tmp_path / "code/report.json").read_bytes() == report


def test_code_a_stage_imports_only_while_it_runs_is_listed_too() -> None:
    """The fit stage builds its heads on first use (``from headstart.heads.knn import ...`` inside a builder), so
    importing its module loads none of them; an edit to one must still rerun it (found missing: knn, ncm, the
    streamed protocol, the settings digest)."""
    modules = json.loads((REPO / "headstart-sources/code-modules.json").read_text())
    for path in ("heads/knn.py", "heads/ivf.py", "heads/ncm.py", "heads/stream.py", "heads/evaluate_stream.py",
                 "pipeline/settings.py", "data/hashing.py"):
        assert f"headstart/{path}" in modules["fit"], path
    assert "headstart/features/_torchvision.py" in modules["embed"]
