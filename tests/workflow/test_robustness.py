"""The robustness stage on a real (tiny) project: prepare, settings, embed and fit stages, then every head on
shifted copies of the test split, without refitting."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from headstart.pipeline import embed, prepare, settings
from headstart.workflow import layout
from headstart.workflow.config import Config, ConfigError, load_config, parse_config
from headstart.workflow.fit import fit_stage
from headstart.workflow.report import report_stage
from headstart.workflow.robustness import robustness_stage
from headstart.workflow.settings import fit_settings, report_settings, robustness_settings

PARAMS = {
    "seed": 0,
    "datasets": {"digits": {"source": "digits", "limit": 300}},
    "backbones": {"pixels": {"arch": "pixels", "image_size": 8}},
    "heads": {"knn": {"k": 5}, "logreg": {"C": [0.01, 1.0]}},
    "evaluate": {"seeds": 1, "few_shot": ["all"]},
    "robustness": {"shifts": ["noise:0.4", "rotate:180", "jpeg:30"]},
}


def _robustness(cfg: Config) -> list[str]:
    specs = {name: cfg.backbone(name, "digits") for name in cfg.backbones}
    return robustness_stage(robustness_settings(cfg), specs, "digits", options=cfg.embed)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("robust")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert settings.main([]) == 0 and prepare.main(["digits"]) == 0
        assert embed.main(["digits", "pixels"]) == 0
        cfg = load_config()
        for head in cfg.heads:
            fit_stage(fit_settings(cfg, head), "digits", "pixels")
        _robustness(cfg)
    return root


def test_every_head_is_scored_clean_and_under_each_shift(project: Path) -> None:
    result = json.loads((project / layout.robustness_results("digits")).read_text())
    assert result["shifts"] == PARAMS["robustness"]["shifts"] and result["test_images"] > 50
    rows = {(r["backbone"], r["layer"], r["head"]): r for r in result["rows"]}
    assert set(rows) == {("pixels", "pixels", "knn"), ("pixels", "pixels", "logreg")}
    for (_, layer, head), row in rows.items():
        assert set(row["scores"]) == {"clean", *PARAMS["robustness"]["shifts"]}
        fitted = json.loads((project / layout.results("digits", "pixels", head)).read_text())["layers"][layer]
        metric = fitted["select_by"]
        assert row["metric"] == metric
        # the clean column is the fitted head's own test score: the same model, the same test images
        assert row["scores"]["clean"][metric] == pytest.approx(fitted["metrics"][metric], abs=1e-6)
        # raw pixels are not rotation invariant: a digit upside down is mostly another digit
        assert row["scores"]["rotate:180"][metric] < row["scores"]["clean"][metric] - 0.2
    metrics = json.loads((project / layout.robustness_metrics("digits")).read_text())
    assert set(metrics["pixels"]["pixels"]) == {"knn", "logreg"}
    assert set(metrics["pixels"]["pixels"]["knn"]) == {"clean", *PARAMS["robustness"]["shifts"]}


def test_a_rerun_embeds_nothing_and_writes_the_same_bytes(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(project)
    tracked = [layout.robustness_results("digits"), layout.robustness_metrics("digits")]
    before = [p.read_bytes() for p in tracked]
    with caplog.at_level(logging.INFO, logger="headstart"):
        _robustness(load_config())
    assert [p.read_bytes() for p in tracked] == before
    cached = [r.getMessage() for r in caplog.records if "in the cache" in r.getMessage()]
    # one run of the engine per backbone for all three shifts (the backbone is loaded once), all from the cache
    assert len(cached) == 1 and cached[0].endswith("embedding 0") and cached[0].startswith("270 of 270"), cached


def test_the_report_shows_the_robustness_table(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    text = report_stage(report_settings(load_config()))
    section = text[text.index("## Robustness: digits") :]
    assert "| backbone | layer | head | metric | clean | noise:0.4 | rotate:180 | jpeg:30 | largest drop |" in section
    assert section.count("| pixels | pixels |") == 2 and "**" in section  # the worst shift of a row is bold


def test_robustness_shifts_are_checked_at_load() -> None:
    base = {k: PARAMS[k] for k in ("datasets", "backbones", "heads")}
    with pytest.raises(ConfigError, match=r"robustness.shifts\[1\] is not a shift headstart can apply.*'sharpen'"):
        parse_config({**base, "robustness": {"shifts": ["noise:0.1", "sharpen:2"]}})
    with pytest.raises(ConfigError, match="robustness.shifts lists a shift twice"):
        parse_config({**base, "robustness": {"shifts": ["jpeg:30", "jpeg:30"]}})
    with pytest.raises(ConfigError, match="unknown key 'robustness.shift'"):
        parse_config({**base, "robustness": {"shift": ["jpeg:30"]}})


def test_equal_drops_do_not_break_the_summary(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["robustness"]["shifts"] = ["rotate:0", "contrast:1"]  # both leave the images as they are: drops tie at 0
    (project / "params2.yaml").write_text(yaml.safe_dump(params))
    lines = _robustness(load_config("params2.yaml"))
    assert lines and "largest drop 0.0000" in lines[0]
