"""Fine-tuning every provider's tiny random-init model (no weights, offline): the last blocks and what follows
them train, every other parameter keeps its bytes, and the checkpoint embeds as a backbone with its provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.data import load_embeddings, prepare_dataset
from headstart.features.engine import EmbedOptions, embed
from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.weights import file_sha256, load_state_dict
from headstart.heads.evaluate import SplitData
from headstart.heads.probe import finetuning_probe
from tests.features.provider_models import (
    register_tiny_open_clip,
    synthetic_texts,
    tiny_hf_vision,
    tiny_sentence_transformer,
)

# random-init features are so sensitive that Adam's first steps undo the probe: small SGD steps improve on it
# (on val loss, the tie-break) within two epochs, so the best epoch kept is a trained one
SETTINGS = FinetuneSettings(
    unfreeze=1, epochs=2, patience=5, batch_size=8, num_workers=0, optimizer="sgd", head_lr=1e-2, augment=False
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import huggingface_hub.constants as hub
    except ImportError:
        return
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def _tune(spec: BackboneSpec, prepared: object, tmp_path: Path, settings: FinetuneSettings = SETTINGS) -> tuple:
    """Embed, fit the probe on train (C on val), fine-tune from it: (result, checkpoint path, frozen table)."""
    options = EmbedOptions(num_workers=0, cache_dir=tmp_path / "cache")
    frozen = embed(prepared, spec, tmp_path / "frozen", options=options)
    table = load_embeddings(next(iter(frozen.tables.values())))
    data = SplitData.from_table(table)
    # a deliberately weak probe (C=0.001): on 9 val images a good one is often perfect already, and the epoch kept
    # would then be the probe's (epoch 0) with nothing trained
    mean, scale, weight, bias, classes, _, _ = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, [0.001]
    )
    out = tmp_path / "ft" / "model.pt"
    result = finetune(spec, prepared, LinearInit(weight, bias, classes, mean, scale), out, settings)
    return result, out, table


def _check(spec: BackboneSpec, result: object, path: Path, unfrozen: list[str], prepared: object, tmp_path: Path,
           table: object) -> None:  # fmt: skip
    assert result.unfrozen == unfrozen
    base = load_backbone(spec).model.state_dict()
    saved = load_state_dict(path)
    state = saved["state_dict"]
    assert set(state) == set(base)
    changed = {k for k in base if not torch.equal(base[k], state[k])}
    assert changed, "the unfrozen blocks did not learn anything"
    prefixes = tuple(f"{name}." for name in unfrozen) + tuple(unfrozen)
    assert all(k.startswith(prefixes) for k in changed), sorted(changed - {k for k in changed if k.startswith(prefixes)})
    trained_blocks = {name for name in unfrozen if any(k.startswith(f"{name}.") or k == name for k in changed)}
    assert unfrozen[0] in trained_blocks and saved["best_epoch"] >= 1
    # the fine-tuned network embeds through the same engine, with the checkpoint in the provenance
    tuned_spec = BackboneSpec(spec.arch, str(path), spec.layers, spec.pooling, spec.image_size)
    options = EmbedOptions(num_workers=0, cache_dir=tmp_path / "cache")
    out = embed(prepared, tuned_spec, tmp_path / "tuned", options=options)
    tuned = load_embeddings(next(iter(out.tables.values())))
    prov = tuned.provenance
    assert prov["weights_sha256"] == file_sha256(path) == result.sha256
    assert prov["finetuned"]["unfrozen"] == unfrozen and prov["finetuned"]["epochs"] == result.epochs
    assert prov["finetuned"]["base_weights_sha256"] == table.provenance["weights_sha256"]
    assert prov["base_fingerprint"] != table.provenance["base_fingerprint"]
    assert tuned.X.shape == table.X.shape and not np.array_equal(tuned.X, table.X)


@pytest.mark.parametrize("kind", ["dinov2", "clip", "siglip"])
def test_hf_vision_encoders_fine_tune_their_last_block(kind: str, image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers not installed (pip install 'headstart[hf]')")
    directory = tiny_hf_vision(tmp_path / kind, kind)
    spec = BackboneSpec(f"hf:{directory}", "pretrained", ("default",), "clsavg" if kind == "dinov2" else "avg")
    prepared = prepare_dataset(str(image_folder), val=0.25, test=0.25)
    result, path, table = _tune(spec, prepared, tmp_path)
    tails = {
        "dinov2": ["encoder.layer.2", "layernorm"],
        "clip": ["vision_model.encoder.layers.2", "vision_model.post_layernorm", "visual_projection"],
        "siglip": ["encoder.layers.2", "post_layernorm", "head"],
    }
    _check(spec, result, path, tails[kind], prepared, tmp_path, table)


def test_open_clip_visual_tower_fine_tunes_its_last_resblock(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("open_clip", reason="open_clip not installed (pip install 'headstart[open_clip]')")
    name = register_tiny_open_clip(tmp_path / "configs")
    spec = BackboneSpec(f"open_clip:{name}", "none", ("default",))
    prepared = prepare_dataset(str(image_folder), val=0.25, test=0.25)
    result, path, table = _tune(spec, prepared, tmp_path)
    _check(spec, result, path, ["transformer.resblocks.1", "ln_post", "proj"], prepared, tmp_path, table)


def test_sentence_encoder_fine_tunes_its_last_layer_and_is_seeded(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    model = tiny_sentence_transformer(tmp_path / "st")
    csv = synthetic_texts(tmp_path / "texts.csv", per_class=20)
    spec = BackboneSpec(f"sentence-transformers:{model}", "pretrained", ("default",), "avg")
    prepared = prepare_dataset(str(csv), val=0.25, test=0.25, text_column="text")
    result, path, table = _tune(spec, prepared, tmp_path)
    _check(spec, result, path, ["0.model.encoder.layer.1"], prepared, tmp_path, table)
    again, other, _ = _tune(spec, prepared, tmp_path / "again")
    assert other.read_bytes() == path.read_bytes() and again.best_epoch == result.best_epoch  # seeded: same bytes


def test_text_training_batches_hold_one_token_length_and_shuffle_per_epoch(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    from headstart.features.finetune.data import TextLoader

    model = tiny_sentence_transformer(tmp_path / "st")
    prepared = prepare_dataset(str(synthetic_texts(tmp_path / "t.csv")), val=0, test=0, text_column="text")
    backbone = load_backbone(BackboneSpec(f"sentence-transformers:{model}", "pretrained"))
    labels = {c: i for i, c in enumerate(sorted(prepared["label"].unique()))}
    loader = TextLoader(backbone.text_batches, prepared, labels, 4, seed=0)
    first = [batch.ids for batch in loader]
    assert len(first) == len(loader) and sorted(i for b in first for i in b) == sorted(map(str, range(48)))
    for batch in loader:
        assert batch.pixels["attention_mask"].shape[1] % 8 == 0 and len(batch.ids) <= 4
    assert [b.ids for b in loader] == first  # the same epoch: the same batches
    loader.dataset.epoch = 1
    assert [b.ids for b in loader] != first
    engine = backbone.text_batches(loader.dataset.items, 4).groups()
    assert engine == sorted(engine, key=lambda b: (b[0] != engine[0][0], 0)) and engine != first



def test_every_builtin_provider_is_trainable_and_a_baseline_is_not() -> None:
    from headstart.features.registry import backbone_entry

    for prefix in ("timm", "hf", "open_clip", "sentence-transformers"):
        assert backbone_entry(f"{prefix}:some-model").trainable, prefix
    assert not backbone_entry("pixels").trainable


@pytest.mark.parametrize("arch", ["hf:facebook/dinov2-small", "open_clip:ViT-B-32/x", "sentence-transformers:m"])
def test_params_may_fine_tune_a_provider_backbone_but_not_tfidf(arch: str) -> None:
    from headstart.workflow.config import ConfigError, parse_config

    params = {
        "datasets": {"d": {"source": "digits"}},
        "backbones": {"b": {"arch": arch}, "t": {"arch": "tfidf"}},
        "heads": {"logreg": {}},
        "finetune": {"datasets": ["d"], "backbones": ["b"]},
    }
    assert list(parse_config(params).finetune.backbones) == ["b"]
    with pytest.raises(ConfigError, match="'t' \\(arch tfidf\\), which has nothing to fine-tune"):
        parse_config({**params, "finetune": {"datasets": ["d"], "backbones": ["t"]}})


def test_a_plain_hugging_face_text_encoder_fine_tunes_with_mean_pooling(tmp_path: Path) -> None:
    """A transformers model directory without sentence-transformers' files: mean pooling, its own max length."""
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    import shutil

    model = tiny_sentence_transformer(tmp_path / "bert")
    for name in ("modules.json", "sentence_bert_config.json"):
        (model / name).unlink()
    shutil.rmtree(model / "1_Pooling")
    spec = BackboneSpec(f"sentence-transformers:{model}", "pretrained", ("default",), "avg")
    backbone = load_backbone(spec)
    assert backbone.default_applied == "mean_tokens" and backbone.preprocessing["max_seq_length"] == 64
    prepared = prepare_dataset(str(synthetic_texts(tmp_path / "t.csv", per_class=20)), val=0.25, test=0.25,
                               text_column="text")  # fmt: skip
    # random weights on 15 val texts: training need not beat the probe, so this checks the blocks and the round trip
    result, path, table = _tune(spec, prepared, tmp_path)
    assert result.unfrozen == ["0.model.encoder.layer.1"] and result.epochs == 2
    tuned = load_backbone(BackboneSpec(spec.arch, str(path), spec.layers, spec.pooling))
    assert tuned.provenance()["finetuned"]["unfrozen"] == result.unfrozen and tuned.weights_sha256 == result.sha256
