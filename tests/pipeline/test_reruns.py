"""Two rows of docs/reruns.md, checked with the real `dvc` on a temporary copy of this repository's pipeline.

Cheap on purpose: the `versions` and `settings` stages run for real (no torch), every other stage's outputs are
stand-ins committed to the lock with `dvc commit`, and `dvc status` says which stages an edit makes stale.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PARAMS = {
    "seed": 0,
    "datasets": {"digits": {"source": "digits", "limit": 100}},
    "backbones": {"pixels": {"arch": "pixels", "image_size": 8}},
    "heads": {"knn": {"k": 5}, "ncm": {}},
    "embed": {
        "batch_size": "auto", "device": "auto", "on_error": "skip", "max_image_pixels": 89_478_485,
        "rows_per_shard": "auto", "decode": "jpeg-scaled",
    },  # fmt: skip
    "evaluate": {"seeds": 1, "few_shot": ["all"]},
    "finetune": {"datasets": [], "backbones": []},
    "robustness": {"shifts": ["jpeg:30"]},
    "transfer": {},
}
FILES = (".json", ".parquet", ".csv", ".md", ".png")


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _stale(repo: Path) -> set[str]:
    """The stages `dvc status` finds changed, less the one that always runs."""
    return {name.split(":")[-1] for name in json.loads(_dvc(repo, "status", "--json"))} - {"versions"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for item in ("headstart", "dvc.yaml", "headstart-sources/dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config"):
        target = tmp_path / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / item, target)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    _dvc(tmp_path, "repro", "headstart-sources/dvc.yaml:versions", "settings")  # the two stages without torch
    from dvc.repo import Repo

    with Repo(str(tmp_path)) as dvc:  # stand-ins for what the other stages write
        for stage in dvc.index.stages:
            for out in stage.outs:
                path = Path(out.fs_path)
                if path.exists():
                    continue
                path = path if path.suffix in FILES else path / "stand-in.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
    _dvc(tmp_path, "commit", "--force")
    assert _stale(tmp_path) == set()
    return tmp_path


def test_an_edit_to_a_head_reruns_the_fit_stages_and_neither_prepare_nor_embed(repo: Path) -> None:
    knn = repo / "headstart/heads/knn.py"
    knn.write_text(knn.read_text() + "\n# an edit\n")
    assert _stale(repo) == {"fit@digits-pixels-knn", "fit@digits-pixels-ncm", "robustness@digits", "audit@digits-pixels"}


def test_a_head_parameter_reruns_that_heads_fit_stages_only(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["heads"]["knn"]["k"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _stale(repo) == {"settings"}  # the one stage that reads params.yaml
    _dvc(repo, "repro", "--single-item", "settings")
    assert _stale(repo) == {"fit@digits-pixels-knn"}
