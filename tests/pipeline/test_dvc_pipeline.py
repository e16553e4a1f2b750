"""The real `dvc repro` in a temporary copy of the repository, then a head parameter change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SMALL_PARAMS = {
    "seed": 0,
    "datasets": {
        "digits": {"source": "digits", "limit": 400},
        "digits_inverted": {"source": "digits", "limit": 400, "shift": "invert"},
    },
    "backbones": {
        "mobilenet_v2": {
            "arch": "mobilenet_v2",
            "weights": "IMAGENET1K_V1",
            "layers": ["features.13", "default"],
            "image_size": 32,
        },
        "pixels": {"arch": "pixels", "image_size": 8},
    },
    # ncm (fast) is the head the transfer does not use; knn and logreg are the ones it does
    "heads": {"knn": {"k": 10}, "logreg": {"C": {"logspace": [-3, 1, 5]}}, "ncm": {"temperature": 0.1}},
    # every embed key dvc.yaml lists (DVC refuses a listed key that is missing)
    "embed": {
        "batch_size": 64,
        "device": "auto",
        "num_workers": 0,
        "on_error": "skip",
        "max_image_pixels": 89_478_485,
        "rows_per_shard": "auto",
        "decode": "jpeg-scaled",
    },
    "evaluate": {"seeds": 2, "few_shot": [1, 5, "all"]},
    # every key the finetune stage lists in dvc.yaml's params (DVC refuses a listed key that is missing)
    "finetune": {
        "datasets": ["digits"],
        "backbones": ["mobilenet_v2"],
        "probe_head": "logreg",
        "unfreeze": 1,
        "optimizer": "adamw",
        "head_lr": 0.001,
        "backbone_lr_factor": 0.1,
        "weight_decay": 0.0001,
        "epochs": 1,
        "patience": 3,
        "batch_size": 32,
        "update_bn": False,
        "augment": True,
        "class_weight": "balanced",
        "select_by": "auto",
        "device": "auto",
    },
    "robustness": {"shifts": ["noise:0.1", "jpeg:30"]},
    "transfer": {
        "shift": {
            "source": "digits",
            "target": "digits_inverted",
            "backbone": "mobilenet_v2",
            "layer": "default",
            "heads": ["logreg", "knn"],
            "adapt_steps": 3,
        }
    },
}


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, mobilenet_weights: Path) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    pipeline = ("dvc.yaml", "headstart-sources/dvc.yaml")
    for item in ("headstart", *pipeline, ".dvcignore", ".gitignore", ".dvc/config", ".dvc/plots"):
        source = REPO / item
        target = repo / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    (repo / "params.yaml").write_text(yaml.safe_dump(SMALL_PARAMS, sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "start")
    return repo


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def test_full_run_then_metrics_plots_and_report(repo: Path) -> None:
    output = _dvc(repo, "repro")
    assert {
        "prepare@digits",
        "embed@digits-mobilenet_v2",
        "embed@digits-pixels",
        "finetune@digits-mobilenet_v2",
        "embed_finetuned@digits-mobilenet_v2",
        "transfer@shift",
        "report",
    } <= _ran(output)
    metrics = json.JSONDecoder().raw_decode(_dvc(repo, "metrics", "show", "--json"))[0]  # stdout first, then warnings
    files = next(iter(metrics.values()))["data"]  # keyed by revision ("" or "workspace")
    for head in ("knn", "logreg", "ncm"):
        data = files[f"metrics/heads/digits/mobilenet_v2/{head}.json"]["data"]
        assert set(data) == {"features.13", "flatten"}
        assert 0.5 < data["features.13"]["accuracy"] <= 1.0
    assert files["metrics/embed/digits/mobilenet_v2.json"]["data"]["failed"] == 0
    report = (repo / "reports" / "heads.md").read_text()
    heads_part = report[: report.index("## Fine-tuning")]  # the head tables (the robustness tables come later)
    rows = [line.split(" | ")[0] for line in heads_part.splitlines()]
    assert rows.count("| mobilenet_v2") == 12 and rows.count("| pixels") == 6  # 2 datasets
    assert rows.count("| mobilenet_v2-finetuned") == 6  # the fine-tuned network, same 2 layers x 3 heads
    assert "## Fine-tuning" in report and "## Domain shift: digits -> digits_inverted" in report
    finetuned = json.loads((repo / "results/finetune/digits/mobilenet_v2.json").read_text())
    assert 0.5 < finetuned["test_accuracy"] <= 1 and len(finetuned["sha256"]) == 64
    transfer = json.loads((repo / "results/transfer/shift.json").read_text())
    assert len(transfer["rows"]) == 8 and (repo / "reports/transfer/shift.md").exists()
    assert set(files["metrics/transfer/shift.json"]["data"]) == {"logreg", "knn"}
    assert files["metrics/finetune/digits/mobilenet_v2.json"]["data"]["test_accuracy"] > 0.5
    assert (repo / "reports" / "fewshot.png").stat().st_size > 10_000
    assert {"robustness@digits", "robustness@digits_inverted", "settings"} <= _ran(output)
    robust = files["metrics/robustness/digits.json"]["data"]
    assert set(robust) == {"mobilenet_v2", "pixels", "mobilenet_v2-finetuned"}
    assert set(robust["mobilenet_v2"]["features.13"]["knn"]) == {"clean", "noise:0.1", "jpeg:30"}
    assert "## Robustness: digits" in report and "## Robustness: digits_inverted" in report
    plots = json.JSONDecoder().raw_decode(_dvc(repo, "plots", "show", "--json"))[0]["data"]
    assert "reports/plots/fewshot.csv" in plots
    assert any(key.startswith("plots/confusion/digits/mobilenet_v2/knn") for key in plots)


def test_an_unused_head_and_a_dataset_override_rerun_only_what_they_touch(repo: Path) -> None:
    # first, nothing changed: only the stage that watches the datasets and the installed versions runs
    assert _ran(_dvc(repo, "repro")) == {"headstart-sources/dvc.yaml:versions"}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["heads"]["ncm"]["temperature"] = 0.05  # a head transfer.shift does not use (it uses logreg and knn)
    params["datasets"]["digits"]["backbones"] = {"pixels": {"image_size": 4}}  # digits' own pixels size
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    kept = {p: p.read_bytes() for p in (repo / "models/digits_inverted/mobilenet_v2/knn").rglob("*") if p.is_file()}
    output = _dvc(repo, "repro")
    ran = _ran(output)
    # the override: only that pair's embed stage, and the fits of its table
    assert {s for s in ran if s.startswith("embed")} == {"embed@digits-pixels"}, output
    assert {"fit@digits-pixels-knn", "fit@digits-pixels-logreg", "fit@digits-pixels-ncm"} <= ran  # a new table
    resolved = json.loads((repo / "settings/digits/pixels.json").read_text())
    assert resolved["spec"]["image_size"] == 4 and resolved["overridden"] == ["image_size"]
    assert json.loads((repo / "settings/digits_inverted/pixels.json").read_text())["spec"]["image_size"] == 8
    table = pq.read_table(repo / "embeddings/digits/pixels/pixels.parquet")
    assert table.schema.field("embedding").type.list_size == 3 * 4 * 4  # RGB at the 4 px override reached the pixels
    lock_after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in ("embed@digits-mobilenet_v2", "embed@digits_inverted-pixels"):
        assert lock_after[stage] == lock_before[stage]
    # the head change: that head's fit stages only; not the transfer (its settings file has the same bytes), nor
    # fine-tuning (its probe head's files did not change)
    assert {"settings", "fit@digits-mobilenet_v2-ncm", "fit_finetuned@digits-mobilenet_v2-ncm"} <= ran
    assert "transfer@shift" not in ran and "report" in ran
    assert not {s for s in ran if s.startswith("fit") and "pixels" not in s and not s.endswith("-ncm")}, output
    assert {p: p.read_bytes() for p in kept} == kept
    assert not {s for s in ran if s.startswith(("finetune@", "embed_finetuned@"))}


def test_dvc_exp_run_with_a_set_parameter_reruns_that_heads_stages_only(repo: Path) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "after first runs")
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    output = _dvc(repo, "exp", "run", "-S", "heads.knn.k=3")
    ran = _ran(output)
    assert {
        "fit@digits-mobilenet_v2-knn",
        "fit@digits-pixels-knn",
        "fit_finetuned@digits-mobilenet_v2-knn",
        "transfer@shift",  # the transfer uses the knn head
        "report",
    } <= ran, output  # -S reached the stages
    assert not {s for s in ran if s.startswith("fit") and not s.endswith("-knn")}, output
    assert not {s for s in ran if s.startswith(("embed", "finetune@", "embed_finetuned@"))}, output
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in ("embed@digits-mobilenet_v2", "embed@digits-pixels"):
        assert lock[stage] == lock_before[stage]
    assert lock["settings"]["params"]["params.yaml"]["heads"]["knn"]["k"] == 3  # the one stage that reads it
    assert json.loads((repo / "settings/heads/knn.json").read_text())["head"]["params"]["k"] == 3
    results = json.loads((repo / "results/heads/digits/mobilenet_v2/knn.json").read_text())
    assert {layer: record["params"]["k"] for layer, record in results["layers"].items()} == {
        "features.13": 3,
        "flatten": 3,
    }  # the heads the experiment saved were fitted with k=3
