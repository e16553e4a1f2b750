"""DVC and matplotlib are the `pipeline` extra: the library, the notebook API and the CLI's embed, fit and predict
work without them, and what needs them says in one line which extra installs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from headstart.report.figures import MissingPlotting, fewshot_figure
from headstart.report.tables import ReportRow
from tests.conftest import REPO, digit_images, write_folder

# run before headstart is imported: `import dvc` and `import matplotlib` then raise ImportError
WITHOUT_EXTRAS = "import sys; sys.modules['dvc'] = None; sys.modules['matplotlib'] = None\n"
EXTRA = "pip install 'headstart[pipeline]'"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_the_core_dependencies_name_neither_dvc_nor_matplotlib() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}

    assert not names(project["dependencies"]) & {"dvc", "matplotlib"}
    assert {"dvc", "matplotlib"} <= names(project["optional-dependencies"]["pipeline"])


def test_embed_fit_and_predict_without_dvc_or_matplotlib(tmp_path: Path) -> None:
    paths = write_folder(tmp_path / "photos", digit_images(n_per_class=12))
    code = f"""
import headstart
emb = headstart.embed("photos", backbone="pixels", cache_dir=None)
head = headstart.fit(emb, "knn")
labels = head.predict({[str(p) for p in paths[:3]]!r})
assert emb.X.shape[0] == {len(paths)}, emb.X.shape
assert sys.modules['dvc'] is None and sys.modules['matplotlib'] is None
print("accuracy", head.metrics["accuracy"], "predicted", len(labels))
"""
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "predicted 3" in result.stdout


def test_init_without_dvc_names_the_extra_in_one_line(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".dvc").mkdir()
    result = _python("from headstart.cli import main\nraise SystemExit(main(['init', '.']))", tmp_path)
    assert result.returncode == 2, result.stderr
    message = f"headstart: error: headstart init writes a DVC pipeline; install it with {EXTRA}"
    assert result.stderr.splitlines() == [message]
    assert not (tmp_path / "dvc.yaml").exists() and not (tmp_path / "params.yaml").exists()


def test_figures_without_matplotlib_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    row = ReportRow("digits", "pixels", "flatten", "knn", {"metrics": {"accuracy": 1.0}, "confusion": {}})
    with pytest.raises(MissingPlotting, match=re.escape(EXTRA)) as raised:
        fewshot_figure([row], tmp_path / "fewshot.png")
    assert "\n" not in str(raised.value) and not (tmp_path / "fewshot.png").exists()
