"""Preprocessing that travels with the weights: the weights' own ``transforms()``, at a chosen image size."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torchvision.models import get_model_weights
from torchvision.transforms import functional as F
from torchvision.transforms._presets import ImageClassification

from headstart.features.spec import BackboneError

__all__ = ["BatchStage", "ImageStage", "build_transform", "split_transform"]

log = logging.getLogger(__name__)


def build_transform(
    arch: str, enum: Any, image_size: int | None, resize_size: int | None
) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """The weights' ``transforms()``, optionally at another crop size, and a description of it.

    ``image_size`` is the crop; ``resize_size`` defaults to the weights' own resize/crop ratio (256/224 for
    most ImageNet weights), so small images such as digits are upscaled the same way large ones are
    downscaled. Random weights (``enum is None``) use the preprocessing of the architecture's first weights.
    """
    source = enum
    if source is None:
        try:
            source = next(iter(get_model_weights(arch)))
        except (ValueError, KeyError, StopIteration):
            source = None
    base = source.transforms() if source is not None else ImageClassification(crop_size=224)
    if not isinstance(base, ImageClassification):
        raise BackboneError(f"{source} has preprocessing {type(base).__name__}, not an image classification preset")
    crop = base.crop_size[0]
    resize = base.resize_size[0]
    if image_size is not None:
        new_resize = resize_size if resize_size is not None else int(round(image_size * resize / crop))
        crop, resize = image_size, new_resize
    elif resize_size is not None:
        resize = resize_size
    if resize < crop:
        raise BackboneError(
            f"resize_size {resize} is smaller than image_size {crop}; the crop would not fit: "
            "raise resize_size or leave it out"
        )
    transform = (
        source.transforms(crop_size=crop, resize_size=resize)
        if source is not None
        else ImageClassification(crop_size=crop, resize_size=resize)
    )
    info = {
        "transform": type(transform).__name__,
        "from_weights": str(source) if source is not None else None,
        "crop_size": crop,
        "resize_size": resize,
        "mean": [float(x) for x in transform.mean],
        "std": [float(x) for x in transform.std],
        "interpolation": transform.interpolation.value,
        "antialias": bool(transform.antialias),
        "decode": "PIL, EXIF-transposed, 8-bit RGB (16-bit grey rescaled)",
    }
    return transform, info


class ImageStage:
    """The per-image half of an ImageClassification preset: resize, centre crop, 8-bit ``(3, H, W)`` tensor.

    The float conversion and normalisation are left to :class:`BatchStage`, on a whole batch at once: 4x fewer
    bytes from the decoding processes (or to a GPU), and one vectorised pass per batch in the forward workers
    instead of three passes per image in the decoding.
    """

    def __init__(self, preset: Any) -> None:
        self.resize_size, self.crop_size = list(preset.resize_size), list(preset.crop_size)
        self.interpolation, self.antialias = preset.interpolation, preset.antialias

    def __call__(self, image: Any) -> Any:
        image = F.resize(image, self.resize_size, interpolation=self.interpolation, antialias=self.antialias)
        image = F.center_crop(image, self.crop_size)
        return image if not hasattr(image, "mode") else F.pil_to_tensor(image)


class BatchStage:
    """The per-batch half: ``(N, 3, H, W)`` uint8 -> float32 in ``[0, 1]`` -> normalised, in channels-last
    layout. torchvision's own functions on the batch, so every value is the preset's to the bit (tested); a
    float batch (already finished) passes through."""

    def __init__(self, preset: Any) -> None:
        self.mean, self.std = list(preset.mean), list(preset.std)

    def __call__(self, batch: Any) -> Any:
        if batch.dtype != torch.uint8:
            return batch
        batch = F.convert_image_dtype(batch.contiguous(memory_format=torch.channels_last), torch.float)
        return F.normalize(batch, mean=self.mean, std=self.std, inplace=True)


def split_transform(transform: Any) -> tuple[ImageStage, BatchStage] | None:
    """An ImageClassification preset as its per-image and per-batch halves; ``None`` for any other transform."""
    if type(transform) is not ImageClassification:
        return None
    return ImageStage(transform), BatchStage(transform)
