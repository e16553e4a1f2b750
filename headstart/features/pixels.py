"""The ``pixels`` backbone: the raw image, resized to a small square and flattened.

It goes through the same stages and heads as a pretrained network, so every report shows whether the
pretrained features actually beat the raw pixels (on grey digits they often do not).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from headstart.features.registry import Backbone
from headstart.features.spec import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights

__all__ = ["PixelsBackbone", "build_pixels"]

DEFAULT_SIZE = 16


class _PixelTransform:
    """PIL RGB image -> float tensor (3, s, s) in [0, 1], bilinear with antialiasing."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Any) -> torch.Tensor:
        tensor = F.pil_to_tensor(image)
        tensor = F.resize(tensor, [self.size, self.size], antialias=True)
        return tensor.float().div_(255.0)


class _Flatten(nn.Module):
    """The image as its vector; the pooling setting does not apply (recorded as "none")."""

    reentrant = True  # no state: passes may run in several threads at once

    def __init__(self, poolings: tuple[str, ...]) -> None:
        super().__init__()
        self.poolings = poolings
        self.applied = {("pixels", mode): "none" for mode in poolings}

    def forward(self, x: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        flat = x.flatten(1).float()
        return {("pixels", mode): flat for mode in self.poolings}


class PixelsBackbone(Backbone):
    def graph_nodes(self) -> list[str]:
        return ["pixels"]

    def default_node(self) -> str:
        return "pixels"

    def resolve_layers(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        for layer in layers:
            if layer not in ("default", "pixels"):
                raise BackboneError(f"the pixels backbone has one layer, 'pixels' (or 'default'), not '{layer}'")
        return ("pixels",)

    def extractor(self, layers: tuple[str, ...], poolings: tuple[str, ...]) -> nn.Module:
        self.resolve_layers(layers)
        return _Flatten(poolings)

    def declared_dim(self, node: str) -> int:
        return 3 * self.preprocessing["crop_size"] ** 2


def build_pixels(spec: BackboneSpec) -> Backbone:
    """The builder registered as ``pixels`` (:mod:`headstart.features.registry`)."""
    if spec.weights not in (None, "none"):
        raise BackboneError(f"the pixels backbone has no weights; remove `weights: {spec.weights}`")
    size = spec.image_size or DEFAULT_SIZE
    preprocessing = {
        "transform": "resize_flatten",
        "crop_size": size,
        "resize_size": size,
        "interpolation": "bilinear",
        "antialias": True,
        "scale": "0..1",
        "decode": "PIL, EXIF-transposed, 8-bit RGB (16-bit grey rescaled)",
    }
    return PixelsBackbone(
        spec=spec,
        model=nn.Identity(),
        transform=_PixelTransform(size),
        preprocessing=preprocessing,
        weights=ResolvedWeights("none", None),
        weights_sha256=None,
    )
