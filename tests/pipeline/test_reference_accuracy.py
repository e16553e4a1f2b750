"""The acceptance figure of the default run: MobileNetV2 IMAGENET1K_V1 + logistic regression on digits.

The figure is not written here: it is read from where the default run recorded it,
``metrics/heads/digits/mobilenet_v2/logreg.json`` (what ``dvc metrics show`` lists), and docs/heads.md's table of
the default run must quote the same numbers. The slow test runs the pipeline's own stages on the repository's
params.yaml and must land on the recorded figure, which must clear the foundation's acceptance bar (0.93 on the pooled
final layer).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from headstart.data import load_embeddings
from headstart.heads.evaluate import SplitData, evaluate_head
from tests.conftest import REPO

RECORDED = REPO / "metrics" / "heads" / "digits" / "mobilenet_v2" / "logreg.json"
ACCEPTANCE = 0.93  # the foundation issue's bar for logreg on the pooled final layer (`flatten`)
# The sweep's L-BFGS fits stop at a tolerance, so another BLAS build or thread count can move a val score and
# with it the chosen C; measured on the 2-core machine: flatten 0.9481 (C=0.56) against the recorded 0.9499
# (C=1.78), one test image. Three test images of slack, no more.
SLACK_IMAGES = 3


def _recorded() -> dict[str, float]:
    return {layer: scores["accuracy"] for layer, scores in json.loads(RECORDED.read_text()).items()}


def test_the_recorded_figures_clear_the_bar_and_the_docs_quote_them() -> None:
    recorded = _recorded()
    assert set(recorded) == {"features.13", "flatten"}
    assert recorded["flatten"] >= ACCEPTANCE
    assert recorded["features.13"] > recorded["flatten"]  # what the docs say: the middle layer transfers better
    docs = (REPO / "docs" / "heads.md").read_text()
    for layer, accuracy in recorded.items():
        row = re.search(rf"^\| mobilenet_v2 \| {re.escape(layer)} \| logreg \| ([0-9.]+) \|", docs, re.M)
        assert row, f"docs/heads.md's table has no row for mobilenet_v2 {layer} logreg"
        assert row.group(1) == f"{accuracy:.4f}", f"docs/heads.md says {row.group(1)}, {RECORDED.name} says {accuracy}"


@pytest.mark.slow
def test_the_default_stages_reproduce_the_recorded_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mobilenet_weights: Path
) -> None:
    from headstart.pipeline import embed, prepare, settings

    params = REPO / "params.yaml"
    monkeypatch.chdir(tmp_path)  # the stages write settings/, data/, embeddings/ and the cache under it
    assert settings.main(["--params", str(params)]) == 0  # the one stage that reads params.yaml
    assert prepare.main(["digits"]) == 0
    assert embed.main(["digits", "mobilenet_v2"]) == 0
    logreg = yaml.safe_load(params.read_text())["heads"]["logreg"]
    for layer, accuracy in _recorded().items():
        data = SplitData.from_table(load_embeddings(tmp_path / "embeddings" / "digits" / "mobilenet_v2" / f"{layer}.parquet"))
        measured = evaluate_head("logreg", logreg, data, seeds=1, few_shot=()).metrics["accuracy"]
        slack = SLACK_IMAGES / len(data.y_test)
        assert measured == pytest.approx(accuracy, abs=slack), f"{layer}: measured {measured:.4f}, recorded {accuracy}"
