"""The edges of `headstart embed` and `predict`: each is one line on stderr, exit status 2, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from headstart.cli import main

# Runs the CLI with Ray unimportable, as in an environment without the `ray` extra.
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from headstart.cli import main; raise SystemExit(main())"


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("headstart: error: "), err
    return err


def test_the_ray_engine_without_ray_names_the_extra(image_folder: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args = ["embed", str(image_folder), "-o", "out.parquet", "--engine", "ray", "--weights", "none"]
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, *args], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert "pip install 'headstart[ray]'" in _one_line(run.stderr)
    assert list(work.iterdir()) == []


def test_a_ray_address_with_no_cluster_is_one_line(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'headstart[ray]')")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["embed", str(image_folder), "-o", "out.parquet", "--engine", "ray", "--address", "127.0.0.1:1"]
    assert main([*args, "--weights", "none"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "no Ray cluster answers at 127.0.0.1:1" in err and "ray start --head" in err
    assert list(work.iterdir()) == []


def test_predict_names_the_model_file_it_expected(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    image = str(next(image_folder.rglob("*.png")))
    assert main(["predict", str(tmp_path / "nomodel"), image, "-o", "pred.csv"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"no fitted head at {tmp_path / 'nomodel'}: expected {tmp_path / 'nomodel' / 'model.json'}" in err
    assert main(["predict", str(tmp_path / "nomodel" / "model.json"), image]) == 2
    assert f"expected {tmp_path / 'nomodel' / 'model.json'}" in capsys.readouterr().err
    assert list(work.iterdir()) == []
