"""The experiment comparison docs/pipeline.md shows, run with the real `dvc` on a stand-in of the default pipeline's
metrics: its datasets, backbones, layers and heads, each fit with a detailed metrics file, and the report stage's
summary written by headstart's own code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

WIDTH = 160  # a wide terminal
DATASETS = ("digits", "digits_inverted", "digits_imbalanced")
LAYERS = {"mobilenet_v2": ("features.13", "default"), "pixels": ("flatten",),
          "mobilenet_v2-finetuned": ("features.13", "default")}  # fmt: skip
HEADS = ("knn", "logreg", "svm", "ncm")

# one stage standing for the fit stages (scores move with heads.knn.k) and one for the report stage
STAGES = f"""
import json, pathlib, sys, yaml
from headstart._files import write_json
from headstart.report.tables import ReportRow
from headstart.workflow.report import summary_metrics

k = yaml.safe_load(open("params.yaml"))["heads"]["knn"]["k"]
rows = []
for dataset in {DATASETS!r}:
    for backbone, layers in {LAYERS!r}.items():
        for layer in layers:
            for i, head in enumerate({HEADS!r}):
                score = 0.9 + 0.001 * (k if head == "knn" else i) + 0.0001 * len(layer)
                keys = ("accuracy", "balanced_accuracy", "macro_f1", "accuracy_test_low", "fewshot_1_accuracy")
                record = {{"metrics": dict.fromkeys(keys, score), "select_by": "accuracy"}}
                rows.append(ReportRow(dataset, backbone, layer, head, record))
if sys.argv[1] == "fit":
    for row in rows:
        path = f"metrics/heads/{{row.dataset}}/{{row.backbone}}/{{row.head}}.json"
        write_json(path, {{row.layer: row.record["metrics"]}})
else:
    write_json("metrics/summary.json", summary_metrics(rows))
"""

DVC_YAML = {
    "stages": {
        "fit": {"cmd": "python stages.py fit", "deps": ["stages.py"], "params": ["heads", "seed"],
                "metrics": [{"metrics/heads": {"cache": False}}]},
        "report": {"cmd": "python stages.py report", "deps": ["stages.py", "metrics/heads"],
                   "metrics": [{"metrics/summary.json": {"cache": False}}]},
    }
}  # fmt: skip


def _documented() -> list[str]:
    """The comparison commands of docs/pipeline.md's Experiments section."""
    section = (REPO / "docs" / "pipeline.md").read_text().split("## Experiments", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    return [line for line in block.splitlines() if line.startswith(("dvc exp show", "dvc metrics diff"))]


def _run(repo: Path, command: str) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "PYTHONPATH": str(REPO)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if command.startswith("git "):
        command = "git -c user.name=t -c user.email=t@t " + command[4:]
    result = subprocess.run(shlex.split(command), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_documented_comparison_fits_a_wide_terminal(tmp_path: Path) -> None:
    (tmp_path / "stages.py").write_text(STAGES)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    params = {"seed": 0, "heads": {"knn": {"k": 20, "metric": "cosine"}, "logreg": {"C": 1.0}, "ncm": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for command in ("git init -q", "dvc init -q", "dvc repro -q", "git add -A", "git commit -qm baseline"):
        _run(tmp_path, command)
    ran = _run(tmp_path, "dvc exp run -S heads.knn.k=10")
    name = re.search(r"Ran experiment\(s\): (\S+)", ran).group(1)  # type: ignore[union-attr]
    show, diff = _documented()
    assert "dvc exp show" in show and "dvc metrics diff" in diff

    table = _run(tmp_path, show).splitlines()
    header = table[1].split()
    layers = [f"digits/mobilenet_v2/{layer}/knn" for layer in sorted(LAYERS["mobilenet_v2"])]
    assert header == ["Experiment", *layers, "heads.knn.k"]  # knn's scores on digits x mobilenet_v2, and k
    assert max(map(len, table)) <= WIDTH and "…" not in "".join(table)  # nothing cut off
    rows = {line.split()[-4]: line.split()[-1] for line in table[3:-1]}  # row name -> heads.knn.k
    assert rows.pop("workspace") == "10" and rows.pop(f"[{name}]") == "10" and list(rows.values()) == ["20"]

    changed = _run(tmp_path, diff.replace("<experiment>", name)).splitlines()
    knn = [f"{d}/{b}/{layer}/knn" for d in DATASETS for b, layers in LAYERS.items() for layer in layers]
    assert sorted(line.split()[1] for line in changed[1:]) == sorted(knn)  # the changed scores, one a line
    assert max(map(len, changed)) <= WIDTH
