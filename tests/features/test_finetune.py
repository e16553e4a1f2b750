"""Fine-tuning: frozen layers stay put, the checkpoint loads as a backbone and names its sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.data import load_embeddings, prepare_dataset
from headstart.features.engine import EmbedOptions, embed
from headstart.features.finetune import FinetuneSettings, LinearInit, blocks, finetune
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.weights import load_state_dict
from headstart.heads.evaluate import SplitData
from headstart.heads.probe import as_linear_layer, finetuning_probe
from headstart.heads.registry import build_head

SPEC = BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("default",), image_size=32)


@pytest.fixture
def tuned(image_folder: Path, tmp_path: Path, mobilenet_weights: Path) -> tuple[Path, object]:
    prepared = prepare_dataset(str(image_folder), val=0.25, test=0.25)
    table = embed(prepared, SPEC, tmp_path / "emb", options=EmbedOptions(num_workers=0, cache_dir=tmp_path / "c"))
    data = SplitData.from_table(load_embeddings(table.tables["flatten"]))
    mean, scale, weight, bias, classes, _, _ = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, [0.01, 0.1, 1.0]
    )
    settings = FinetuneSettings(
        unfreeze=2, epochs=2, patience=5, batch_size=8, num_workers=0, optimizer="sgd", head_lr=0.01
    )
    result = finetune(
        SPEC, prepared, LinearInit(weight, bias, classes, mean, scale), tmp_path / "ft" / "model.pt", settings
    )
    return tmp_path / "ft" / "model.pt", result


def test_only_the_unfrozen_blocks_change(tuned: tuple[Path, object]) -> None:
    path, result = tuned
    base = load_backbone(SPEC).model.state_dict()
    saved = load_state_dict(path)
    tuned_state = saved["state_dict"]
    assert result.unfrozen == ["features.17", "features.18"]
    assert saved["best_epoch"] >= 1, saved["history"]  # training improved on the probe (val loss at least)
    changed = {k for k in base if not torch.equal(base[k], tuned_state[k])}
    assert changed, "the unfrozen blocks did not learn anything"
    assert all(k.startswith(("features.17.", "features.18.")) for k in changed), sorted(changed)[:5]
    # BatchNorm statistics stay frozen by default, even inside the unfrozen blocks
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed)


def test_checkpoint_loads_as_a_backbone_and_names_its_sha256(
    tuned: tuple[Path, object], image_folder: Path, tmp_path: Path
) -> None:
    path, result = tuned
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.sha256 == digest
    assert path.with_name("model.pt.sha256").read_text().split()[0] == digest
    spec = BackboneSpec("mobilenet_v2", weights=str(path), layers=("default",), image_size=32)
    base = embed(
        prepare_dataset(str(image_folder)),
        SPEC,
        tmp_path / "emb1",
        options=EmbedOptions(num_workers=0, cache_dir=tmp_path / "c"),
    )
    out = embed(
        prepare_dataset(str(image_folder)),
        spec,
        tmp_path / "emb2",
        options=EmbedOptions(num_workers=0, cache_dir=tmp_path / "c"),
    )
    provenance = out.provenance["flatten"]
    assert provenance["weights_sha256"] == digest and provenance["weights"] == str(path)
    assert provenance["base_fingerprint"] != base.provenance["flatten"]["base_fingerprint"]
    assert out.stats.computed == 36  # a new network: nothing comes from the base backbone's cache
    assert not np.array_equal(load_embeddings(out.tables["flatten"]).X, load_embeddings(base.tables["flatten"]).X)
    assert provenance["preprocessing"]["from_weights"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    saved = load_state_dict(path)
    assert saved["config"]["unfreeze"] == 2 and len(saved["head"]["classes"]) == 3


def test_folded_probe_gives_the_probes_logits() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)) * [1, 5, 0.1, 2, 3, 1] + [0, 3, -1, 0, 2, 0]
    y = np.array(["a", "b", "c", "d"] * 50)
    probe = build_head("logreg", {"C": 1.0}).fit(X, y)
    weight, bias, classes = as_linear_layer(probe)
    np.testing.assert_allclose(X @ weight.T + bias, probe.decision_function(X), rtol=1e-4, atol=1e-4)
    binary = build_head("logreg", {"C": 1.0}).fit(X, y == "a")
    weight, bias, _ = as_linear_layer(binary)
    logits = X @ weight.T + bias
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], binary.decision_function(X), rtol=1e-4, atol=1e-4)


def test_blocks_of_common_architectures() -> None:
    assert [n for n, _ in blocks(load_backbone(BackboneSpec("resnet18")).model)][-2:] == ["layer4.0", "layer4.1"]
    vit = [n for n, _ in blocks(load_backbone(BackboneSpec("vit_b_16")).model)]
    assert "encoder.layers.encoder_layer_11" in vit and "heads" not in vit
