"""`headstart finetune` and `headstart.finetune` with a tiny random-init sentence encoder (SYNTHETIC texts, offline):
the printed scores, the folder it writes, and the result as a backbone for embed and the Encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import headstart
from headstart.cli import main
from headstart.data.tables import load_embeddings
from tests.features.provider_models import synthetic_texts, tiny_sentence_transformer


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def test_cli_finetune_prints_test_scores_and_the_checkpoint_embeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    model = tiny_sentence_transformer(tmp_path / "st")
    csv = synthetic_texts(tmp_path / "texts.csv", per_class=20)
    arch = f"sentence-transformers:{model}"
    run = ["--text-column", "text", "--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    args = ["finetune", str(csv), "--backbone", arch, "-o", str(tmp_path / "ft"), "--unfreeze", "1", "--epochs", "2"]
    assert main([*args, "--val", "0.25", "--test", "0.25", *run]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["backbone"] == arch and printed["unfrozen"] == ["0.model.encoder.layer.1"]
    for scores in (printed["test"], printed["frozen_probe"]):
        assert scores["accuracy_test_low"] <= scores["accuracy"] <= scores["accuracy_test_high"]
        assert {"balanced_accuracy", "macro_f1"} <= set(scores)
    assert json.loads((tmp_path / "ft" / "finetune.json").read_text()) == printed
    assert {p.name for p in (tmp_path / "ft").iterdir()} >= {"model.pt", "model.pt.sha256", "frozen.parquet"}
    out = tmp_path / "tuned.parquet"
    embed = ["embed", str(csv), "--backbone", arch, "--weights", printed["checkpoint"], "-o", str(out), *run]
    assert main(embed) == 0
    table = load_embeddings(out)
    assert table.provenance["weights_sha256"] == printed["sha256"]
    assert table.provenance["finetuned"]["unfrozen"] == printed["unfrozen"]
    capsys.readouterr()
    assert main(["finetune", str(csv), "-o", str(tmp_path / "x"), "--epochs", "0", *run]) == 2
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err


def test_notebook_finetune_returns_a_backbone_that_embed_and_encoder_take(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    model = tiny_sentence_transformer(tmp_path / "st")
    csv = synthetic_texts(tmp_path / "texts.csv", per_class=20)
    tuned = headstart.finetune(str(csv), f"sentence-transformers:{model}", tmp_path / "ft", text_column="text",
                               val=0.25, test=0.25, unfreeze=1, epochs=2, num_workers=0,
                               cache_dir=tmp_path / "cache")  # fmt: skip
    assert tuned.checkpoint == tmp_path / "ft" / "model.pt" and 0 <= tuned.metrics["accuracy"] <= 1
    emb = headstart.embed(str(csv), tuned, text_column="text", cache_dir=tmp_path / "cache", num_workers=0)
    sha = (tmp_path / "ft" / "model.pt.sha256").read_text().split()[0]
    assert emb.frame.attrs["headstart"]["weights_sha256"] == sha
    texts = list(emb.frame["text"][:3])
    encoded = headstart.Encoder(tuned, cache_dir=None, num_workers=0).encode(texts)
    np.testing.assert_array_equal(encoded, emb.X[:3])
    head = headstart.fit(emb, "logreg")
    assert list(head.predict(texts)) == list(head.predict(emb.X[:3]))  # the head embeds texts with the checkpoint
