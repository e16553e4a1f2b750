"""The `headstart` command as a user types it: embed, fit, predict, the listings and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from headstart.cli import main
from tests.conftest import broken_files


def test_embed_fit_predict_on_an_image_folder(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "embed",
                str(image_folder),
                "-o",
                "emb.parquet",
                "--weights",
                "none",
                "--layer",
                "features.6",
                "--image-size",
                "32",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert "features.6: emb.parquet (32-d)" in capsys.readouterr().out
    assert main(["fit", "emb.parquet", "--head", "knn", "-o", "model", "--set", "k=[1,3]"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["params"]["k"] in (1, 3)
    assert payload["test"]["accuracy"] > 0.6  # 3 classes: chance is 1/3, and these digits are easy even for
    # random weights (measured 0.917, 11 of 12)
    assert (tmp_path / "model" / "model.json").exists() and (tmp_path / "model" / "metrics.json").exists()

    new = tmp_path / "new"
    new.mkdir()
    for src in sorted(image_folder.rglob("*.png"))[:3]:
        (new / src.name).write_bytes(src.read_bytes())
    (new / "broken.png").write_text("nope")
    assert main(["predict", "model", str(new), "-o", "pred.csv", "--workers", "0"]) == 0
    rows = pd.read_csv(tmp_path / "pred.csv")
    assert len(rows) == 4 and rows["predicted"].notna().sum() == 3
    assert rows.loc[rows["path"].str.endswith("broken.png"), "error"].str.contains("not an image").all()
    assert set(rows.columns) >= {"path", "predicted", "probability", "top5"}
    assert main(["predict", "model", str(new), "-o", "pred.json", "--workers", "0", "--top", "2"]) == 0
    records = json.loads((tmp_path / "pred.json").read_text())
    good = [r for r in records if r["predicted"] is not None]
    assert len(good) == 3 and all(len(r["top2"]) == 2 for r in good)
    assert [r["error"] for r in records if r["predicted"] is None][0].startswith("not an image")


def test_predict_refuses_embeddings_of_another_layer(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["--weights", "none", "--image-size", "32", "--workers", "0", "--cache-dir", str(tmp_path / "c")]
    assert main(["embed", str(image_folder), "-o", str(tmp_path / "a.parquet"), "--layer", "features.6", *base]) == 0
    assert main(["embed", str(image_folder), "-o", str(tmp_path / "b.parquet"), "--layer", "features.10", *base]) == 0
    assert main(["fit", str(tmp_path / "a.parquet"), "--head", "ncm", "-o", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), "--embeddings", str(tmp_path / "b.parquet")]) == 2
    err = capsys.readouterr().err
    assert "b.parquet has embeddings of mobilenet_v2 none node features.10" in err
    assert "was fitted on mobilenet_v2 none node features.6" in err


def test_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["embed", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.parquet")]) == 2
    assert "neither a built-in dataset" in capsys.readouterr().err
    assert main(["embed", "digits", "-o", str(tmp_path / "x.parquet"), "--backbone", "resnet9000"]) == 2
    assert "unknown backbone 'resnet9000'" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "x.parquet"), "--head", "knn", "-o", str(tmp_path / "m")]) == 2
    assert "x.parquet does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "T", "--head", "knn", "--set", "k=0"], "--set k must be an integer >= 1, got 0"),
        (["fit", "T", "--head", "knn", "--set", "kk=3"], "--set kk: 3 is not a parameter of head 'knn'"),
        (["fit", "T", "--head", "knn", "--set", "k"], "--set takes KEY=VALUE"),
        (["fit", "T", "--head", "forest"], "--head: unknown head 'forest'; known heads: knn, logreg, logreg_stream, ncm, svm"),
        (["fit", "T", "--head", "knn", "--few-shot", "abc"], "--few-shot takes labels per class .*got 'abc'"),
        (["fit", "T", "--head", "knn", "--few-shot", "1,0"], "--few-shot must be a number of images per class >= 1"),
        (["fit", "T", "--head", "knn", "--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["embed", "digits", "--batch-size", "abc"], "--batch-size takes an integer or auto, got 'abc'"),
        (["embed", "digits", "--batch-size", "0"], "--batch-size must be a positive integer or auto, got 0"),
        (["embed", "digits", "--workers", "-1"], "--workers must be an integer >= 0 or auto, got -1"),
        (["embed", "digits", "--val", "0.9", "--test", "0.5"], "val \\+ test must leave room for train"),
        (["embed", "digits", "--image-size", "0"], "--image-size must be at least 1, got 0"),
        (["embed", "digits", "--pooling", "mean"], "--pooling 'mean' is not one of avg, max, avgmax, gem, cls"),
        (["embed", "digits", "--backbone", "nosuch:net"], "unknown backbone provider 'nosuch:'"),
        (["predict", "M", "--top", "0"], "--top must be at least 1, got 0"),
    ],
)
def test_bad_flags_are_one_line_exit_2_and_write_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a.replace("T", str(tmp_path / "t.parquet")) if a == "T" else a for a in args]
    assert main([*args, "-o", "out.parquet" if args[0] == "embed" else "out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("headstart: error: "), err
    assert __import__("re").search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "emb.csv", "--head", "knn", "-o", "model"],
        ["predict", "model", "--embeddings", "emb.csv", "-o", "pred.csv"],
        ["neighbours", "emb.csv", "--query", "a", "-o", "near.csv"],
    ],
)
def test_a_csv_given_as_an_embedding_table_is_named_in_one_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("emb.csv").write_text("id,label,path\na,1,a.png\n")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "emb.csv is not a Parquet embedding table" in err and "written by `headstart embed`" in err, err
    assert "dvc" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.csv"]


def test_verbose_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    from headstart.cli.flags import CliError

    with pytest.raises(CliError, match="--seeds must be at least 1"):
        main(["-v", "fit", str(tmp_path / "t.parquet"), "--head", "knn", "--seeds", "0", "-o", str(tmp_path / "m")])


def test_only_user_errors_become_one_line(capsys: pytest.CaptureFixture) -> None:
    from headstart._terminal import run_main
    from headstart.errors import UserError

    class Mistake(UserError, ValueError):
        pass

    def user(argv: list[str] | None) -> int:
        raise Mistake("bad input; do this instead")

    def fault(argv: list[str] | None) -> int:
        raise ValueError("a bug in headstart")

    assert run_main(user, []) == 2
    assert capsys.readouterr().err == "headstart: error: bad input; do this instead\n"
    with pytest.raises(ValueError, match="a bug in headstart"):
        run_main(fault, [])  # a plain ValueError is a fault: it keeps its traceback
    with pytest.raises(Mistake):
        run_main(user, ["-v"])


def test_listings(capsys: pytest.CaptureFixture) -> None:
    assert main(["heads"]) == 0
    out = capsys.readouterr().out
    assert "logreg: L-BFGS" in out and "(a linear probe" in out and "k=20  (an integer >= 1;" in out
    assert main(["datasets", "--params", "none.yaml"]) == 0
    assert "digits          present" in capsys.readouterr().out
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "IMAGENET1K_V1" in out
    assert main(["backbones", "mobilenet_v2"]) == 0
    assert "default layer = flatten (1280-d)" in capsys.readouterr().out


def test_broken_images_in_a_cli_embed_go_to_the_failures_table(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken_files(image_folder)
    out = tmp_path / "e.parquet"
    assert (
        main(
            [
                "embed",
                str(image_folder),
                "-o",
                str(out),
                "--weights",
                "none",
                "--layer",
                "features.6",
                "--image-size",
                "32",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert "failures: " in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "e.failures.parquet")) == 4
