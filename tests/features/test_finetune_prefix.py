"""A text encoder's frozen blocks run once per fine-tuning call: the network trains to the same bytes as with full
passes every epoch, and the frozen parameters keep theirs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from headstart.data import load_embeddings, prepare_dataset
from headstart.features.engine import EmbedOptions, embed
from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.weights import load_state_dict
from headstart.heads.evaluate import SplitData
from headstart.heads.probe import finetuning_probe
from tests.features.provider_models import synthetic_texts, tiny_sentence_transformer

pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")

SETTINGS = FinetuneSettings(unfreeze=1, epochs=2, patience=5, batch_size=8, num_workers=0, optimizer="sgd",
                            head_lr=1e-2, device="cpu")  # fmt: skip


@pytest.fixture
def texts(tmp_path: Path) -> tuple[BackboneSpec, object, LinearInit]:
    """A tiny random-init sentence encoder (2 layers), SYNTHETIC texts and a weak probe on its frozen features."""
    model = tiny_sentence_transformer(tmp_path / "st")
    spec = BackboneSpec(f"sentence-transformers:{model}", "pretrained", ("default",), "avg")
    csv = synthetic_texts(tmp_path / "texts.csv", per_class=20)
    prepared = prepare_dataset(str(csv), val=0.25, test=0.25, text_column="text")
    frozen = embed(prepared, spec, tmp_path / "frozen", options=EmbedOptions(num_workers=0, cache_dir=tmp_path / "c"))
    data = SplitData.from_table(load_embeddings(next(iter(frozen.tables.values()))))
    mean, scale, weight, bias, classes, _, _ = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, [0.001]
    )
    return spec, prepared, LinearInit(weight, bias, classes, mean, scale)


def test_kept_prefix_trains_the_same_bytes_as_full_passes(
    texts: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec, prepared, init = texts
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.prefix"):
        kept = finetune(spec, prepared, init, tmp_path / "kept" / "model.pt", SETTINGS)
    assert "kept the frozen blocks' output of 60 texts" in caplog.text
    full = finetune(spec, prepared, init, tmp_path / "full" / "model.pt", SETTINGS, keep_prefix=False)
    assert kept.best_epoch >= 1 and repr(kept.history) == repr(full.history)  # epoch 0 has loss nan
    assert kept.test_predicted == full.test_predicted and kept.probe_predicted == full.probe_predicted
    assert (tmp_path / "kept" / "model.pt").read_bytes() == (tmp_path / "full" / "model.pt").read_bytes()
    # the frozen parameters keep their bytes; the unfrozen layer learnt
    base = load_backbone(spec).model.state_dict()
    state = load_state_dict(tmp_path / "kept" / "model.pt")["state_dict"]
    changed = {k for k in base if not torch.equal(base[k], state[k])}
    assert changed and all(k.startswith("0.model.encoder.layer.1.") for k in changed), sorted(changed)


def test_every_layer_unfrozen_trains_on_full_passes(texts: tuple, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    spec, prepared, init = texts
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.prefix"):
        result = finetune(spec, prepared, init, tmp_path / "ft" / "model.pt", SETTINGS.__class__(
            **{**SETTINGS.__dict__, "unfreeze": 2, "epochs": 1}))  # fmt: skip
    assert "kept" not in caplog.text and result.unfrozen == ["0.model.encoder.layer.0", "0.model.encoder.layer.1"]


def test_a_model_whose_top_does_not_reproduce_its_output_trains_on_full_passes(
    texts: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from headstart.features.finetune.prefix import FrozenPrefix

    spec, prepared, init = texts
    forward = FrozenPrefix.forward

    def off_by_a_bit(self: FrozenPrefix, body: torch.nn.Module, features: dict) -> dict:
        return {key: value + 1e-6 for key, value in forward(self, body, features).items()}

    monkeypatch.setattr(FrozenPrefix, "forward", off_by_a_bit)
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.prefix"):
        finetune(spec, prepared, init, tmp_path / "checked" / "model.pt", SETTINGS)
    assert "training on full passes" in caplog.text and "kept the frozen" not in caplog.text
    full = finetune(spec, prepared, init, tmp_path / "full" / "model.pt", SETTINGS, keep_prefix=False)
    assert (tmp_path / "checked" / "model.pt").read_bytes() == full.checkpoint.read_bytes()
