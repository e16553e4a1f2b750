"""Backbone registry contract: every backbone's output width equals its declared dimension; clear errors."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from headstart.features.registry import BackboneError, BackboneSpec, list_backbones, load_backbone
from headstart.features.truncate import NodeError
from headstart.features.weights import WeightsError

# one architecture per family: convnets, depthwise nets, transformers, the raw-pixel baseline
FAMILIES = [
    "pixels",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "resnet18",
    "efficientnet_b0",
    "regnet_y_400mf",
    "densenet121",
    "convnext_tiny",
    "swin_t",
    "vit_b_16",
]


@pytest.mark.parametrize("arch", FAMILIES)
def test_default_layer_width_equals_the_declared_dimension(arch: str) -> None:
    backbone = load_backbone(BackboneSpec(arch, weights=None))
    node = backbone.default_node()
    declared = backbone.declared_dim(node)
    assert declared is not None, f"{arch}: no declared width for its default layer {node}"
    size = backbone.preprocessing["crop_size"]
    pixels = backbone.transform(Image.new("RGB", (size + 7, size + 3), (120, 30, 200)))[None]
    assert pixels.shape[-1] == size
    with torch.inference_mode():
        out = backbone.extractor(("default",), ("avg",))(pixels)
    (vectors,) = out.values()
    assert vectors.shape == (1, declared), f"{arch} {node}: {tuple(vectors.shape)} vs declared {declared}"


def test_every_torchvision_classifier_is_listed() -> None:
    names = list_backbones()
    assert {"pixels", "mobilenet_v2", "resnet50", "vit_b_16"} <= set(names)


def test_unknown_backbone_lists_the_known_ones() -> None:
    with pytest.raises(
        BackboneError, match="unknown backbone 'mobilenet_v9'; known: pixels, tfidf, provider:model .*mobilenet_v2"
    ):
        load_backbone(BackboneSpec("mobilenet_v9"))
    with pytest.raises(
        BackboneError, match="unknown backbone provider 'nosuch:' in 'nosuch:resnet18'; known providers"
    ):
        load_backbone(BackboneSpec("nosuch:resnet18"))


def test_entries_say_what_is_special_instead_of_name_checks() -> None:
    from headstart.features.registry import backbone_entry

    pixels, mobilenet = backbone_entry("pixels"), backbone_entry("mobilenet_v2")
    assert (pixels.trainable, pixels.has_weights) == (False, False)
    assert (mobilenet.trainable, mobilenet.has_weights) == (True, True)


def test_a_provider_serves_its_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from headstart.features import registry

    monkeypatch.setattr(registry, "_PROVIDERS", {})
    built: list[str] = []

    def load(spec: BackboneSpec) -> registry.Backbone:
        built.append(spec.arch)
        return load_backbone(BackboneSpec("pixels", image_size=4))

    registry.register_provider("toy", load, lambda: ["tiny", "small"])
    assert list_backbones("toy") == ["toy:tiny", "toy:small"]
    backbone = load_backbone(BackboneSpec("toy:tiny"))
    assert built == ["toy:tiny"] and backbone.declared_dim("pixels") == 48
    assert registry.backbone_entry("toy:tiny").trainable is False
    with pytest.raises(BackboneError, match="unknown backbone provider 'tim:' .*known providers: toy:"):
        load_backbone(BackboneSpec("tim:resnet18"))
    with pytest.raises(BackboneError, match="registered twice"):
        registry.register_provider("toy", load, list)


def test_unknown_node_suggests_close_names() -> None:
    backbone = load_backbone(BackboneSpec("mobilenet_v2", weights=None))
    with pytest.raises(NodeError, match="no node 'features.31'; did you mean .*features.1.*get_graph_node_names"):
        backbone.resolve_layers(("features.31",))
    assert backbone.resolve_layers(("features.13", "default")) == ("features.13", "flatten")


def test_weights_are_named_exactly() -> None:
    with pytest.raises(WeightsError, match="'DEFAULT' of mobilenet_v2 is an alias.*`weights: IMAGENET1K_V2`"):
        load_backbone(BackboneSpec("mobilenet_v2", weights="DEFAULT"))
    with pytest.raises(WeightsError, match="no weights 'IMAGENET9K'; known: IMAGENET1K_V1, IMAGENET1K_V2"):
        load_backbone(BackboneSpec("mobilenet_v2", weights="IMAGENET9K"))
    with pytest.raises(BackboneError, match="pixels backbone has no weights"):
        load_backbone(BackboneSpec("pixels", weights="IMAGENET1K_V1"))


def test_bad_spec_values() -> None:
    with pytest.raises(BackboneError, match="pooling 'mean' is not one of avg, max, avgmax, gem, cls"):
        BackboneSpec("resnet18", pooling="mean")
    with pytest.raises(BackboneError, match="precision 'fp8'"):
        BackboneSpec("resnet18", precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(BackboneError, match="image_size must be a positive integer"):
        BackboneSpec("resnet18", image_size=0)
    with pytest.raises(BackboneError, match="layers must be a tuple of layer names"):
        BackboneSpec("resnet18", layers="features.3")  # type: ignore[arg-type]


def test_random_weights_are_seeded() -> None:
    a = load_backbone(BackboneSpec("resnet18")).model.conv1.weight
    b = load_backbone(BackboneSpec("resnet18")).model.conv1.weight
    assert torch.equal(a, b)


def test_preprocessing_comes_from_the_weights_at_the_asked_size() -> None:
    backbone = load_backbone(BackboneSpec("mobilenet_v2", weights=None, image_size=64))
    pre = backbone.preprocessing
    assert pre["from_weights"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert (pre["crop_size"], pre["resize_size"]) == (64, 73)
    from torchvision.models import MobileNet_V2_Weights

    assert pre["mean"] == list(MobileNet_V2_Weights.IMAGENET1K_V1.transforms().mean)


@pytest.mark.parametrize("arch, size", [("mobilenet_v2", 64), ("mobilenet_v2", None), ("resnet18", 112)])
def test_split_preprocessing_gives_the_presets_values_to_the_bit(arch: str, size: int | None) -> None:
    """feed decodes to 8-bit tensors and batch_stage converts and normalises the batch: the model must see exactly
    what the weights' transform gives one image at a time (odd sizes, grey, a photo-like noise image)."""
    import numpy as np

    backbone = load_backbone(BackboneSpec(arch, weights=None, image_size=size))
    images = [
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
        for seed, (h, w) in enumerate([(8, 8), (300, 177), (31, 500), (224, 224), (1000, 750)])
    ] + [Image.new("L", (90, 60), 200).convert("RGB")]
    expected = torch.stack([backbone.transform(image) for image in images])
    per_image, _ = backbone.preprocessing_stages()
    eight_bit = torch.stack([per_image(image) for image in images])
    assert eight_bit.dtype == torch.uint8
    got = backbone.batch_stage()(eight_bit)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert backbone.batch_stage()(expected) is expected  # a finished batch passes through


def test_other_preprocessing_is_not_split() -> None:
    assert load_backbone(BackboneSpec("pixels", image_size=16)).batch_stage() is None
