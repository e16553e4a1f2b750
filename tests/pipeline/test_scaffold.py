"""`headstart init`: the shipped templates, this repository as one instance of them, and a user's fresh project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from headstart.cli import main
from headstart.workflow.config import load_config
from headstart.workflow.scaffold import (
    STAGE_CODE,
    InitError,
    init_project,
    render_dvc_yaml,
    render_params,
    template,
)
from tests.conftest import REPO, digit_images, write_folder


def _without_code_deps(text: str) -> str:
    """This repository's dvc.yaml less its three-line header and the deps on its source."""
    lines = text.splitlines(keepends=True)[3:]
    return "".join(line for line in lines if not line.strip().startswith("- headstart/"))


def test_this_repositorys_pipeline_is_the_template_plus_its_own_source_files() -> None:
    committed = (REPO / "dvc.yaml").read_text()
    assert committed == render_dvc_yaml(dev=True)
    assert _without_code_deps(committed) == template("dvc.yaml")
    assert (REPO / "params.yaml").read_text() == template("params.yaml")
    assert (REPO / ".dvc/plots/fewshot.json").read_text() == template("fewshot.json")
    assert (REPO / "headstart-sources/dvc.yaml").read_text() == template("sources.dvc.yaml")
    stages = yaml.safe_load(template("dvc.yaml"))["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        assert not [d for d in body.get("deps", []) if d.startswith("headstart/")], name
        assert "headstart-versions.json" in body["deps"] and not body.get("always_changed"), name
    # the one stage that always runs is alone in its own dvc.yaml (its run rewrites a small lock file)
    assert list(yaml.safe_load(template("sources.dvc.yaml"))["stages"]) == ["versions"]
    dev = yaml.safe_load(committed)["stages"]
    assert set(dev) == set(STAGE_CODE)
    for name, stage in dev.items():
        body = stage.get("do", stage)
        assert [d for d in body["deps"] if d.startswith("headstart/")] == STAGE_CODE[name], name


def test_params_for_your_own_data_are_valid_and_commented(tmp_path: Path) -> None:
    text = render_params("data/photos")
    assert "# an image folder" in text and "# fine-tune from a linear probe" in text
    (tmp_path / "params.yaml").write_text(text)
    cfg = load_config(tmp_path / "params.yaml")
    assert list(cfg.datasets) == ["photos"] and cfg.datasets["photos"].source == "data/photos"
    assert cfg.finetune.datasets == ("photos",) and dict(cfg.transfer) == {}
    assert yaml.safe_load(render_params())["datasets"].keys() == {"digits", "digits_inverted", "digits_imbalanced"}


def test_init_refuses_a_folder_that_is_not_a_git_and_dvc_repository(tmp_path: Path, capsys) -> None:
    with pytest.raises(InitError, match="git init && dvc init"):
        init_project(tmp_path)
    (tmp_path / ".git").mkdir()
    assert main(["init", str(tmp_path)]) == 2
    assert "run `dvc init` there first" in capsys.readouterr().err
    (tmp_path / ".dvc").mkdir()
    written = init_project(tmp_path)
    assert {str(p.relative_to(tmp_path)) for p in written} == {
        "dvc.yaml", "headstart-sources/dvc.yaml", "params.yaml", ".dvc/plots/fewshot.json"
    }  # fmt: skip
    assert "/headstart-versions.json" in (tmp_path / ".gitignore").read_text()
    with pytest.raises(InitError, match="--force"):
        init_project(tmp_path)
    with pytest.raises(InitError, match="no such folder"):
        init_project(tmp_path, data="photos", force=True)


VERSIONS = "headstart-sources/dvc.yaml:versions"  # the stage that always runs, as `dvc repro` names it


def _run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.mark.slow
def test_a_pip_installed_headstart_runs_in_a_fresh_project(tmp_path: Path, mobilenet_weights: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    # the test environment's packages (torch, dvc, pip, setuptools) without its own headstart: a plain path line
    # (an editable install's hook there is not run), after the new venv's own site-packages
    import sysconfig

    (venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "outer.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    source = tmp_path / "source"  # what a source distribution holds: the package, its metadata, the README
    shutil.copytree(REPO / "headstart", source / "headstart", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, str(source)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]

    project = tmp_path / "project"
    write_folder(project / "photos", digit_images(n_per_class=10))
    _run(project, "git", "init", "-q", env=env)
    _run(project, "dvc", "init", "-q", env=env)
    _run(project, "headstart", "init", "--data", "photos", env=env)
    params = yaml.safe_load((project / "params.yaml").read_text())  # a small run: the same stages, less work
    params["backbones"]["mobilenet_v2"]["image_size"] = 32
    params["heads"]["logreg"]["C"] = [0.1, 1.0]
    params["heads"]["svm"]["C"] = [0.1]
    params["evaluate"] = {"seeds": 1, "few_shot": [1, "all"]}
    params["finetune"]["epochs"] = 1
    params["robustness"]["shifts"] = ["jpeg:30"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    installed = _run(project, "python", "-c", "import headstart; print(headstart.__file__)", env=env)
    assert str(venv) in installed  # the installed package, not this checkout

    first = _ran(_run(project, "dvc", "repro", env=env))
    assert {VERSIONS, "prepare@photos", "embed@photos-mobilenet_v2", "fit@photos-pixels-logreg", "finetune@photos-"
            "mobilenet_v2", "report"} <= first  # fmt: skip
    assert json.loads((project / "headstart-versions.json").read_text())["headstart"] == "0.1.0"
    assert (project / "reports" / "heads.md").is_file()
    again = _ran(_run(project, "dvc", "repro", env=env))
    assert again == {VERSIONS}  # always runs, writes the same bytes: nothing downstream reruns, not even prepare
    assert "Data and pipelines are up to date" in _run(project, "dvc", "status", env=env) or again

    # a teammate: clone, `dvc pull`, `dvc repro`: nothing is embedded again, and no embedding cache is needed
    remote = tmp_path / "remote"
    _run(project, "dvc", "remote", "add", "-d", "local", str(remote), env=env)
    _run(project, *git, "add", "-A", env=env)
    _run(project, *git, "commit", "-qm", "pipeline", env=env)
    _run(project, "dvc", "push", "-q", env=env)
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "-q", str(project), str(clone), env=env)
    shutil.copytree(project / "photos", clone / "photos", dirs_exist_ok=True)  # the data, as the team shares it
    _run(clone, "dvc", "pull", "-q", env=env)
    pulled = _ran(_run(clone, "dvc", "repro", env=env))
    assert pulled == {VERSIONS}  # the same files give the same headstart-sources/photos.json on any clone
    assert not (clone / ".headstart" / "cache").exists()  # no embedding cache (prepare's stat cache may be there)
