"""The settings of the features part, defined once: params.yaml (``headstart.workflow.config``) and the CLI
both build these types, and the library takes them as they are.

This module imports neither torch nor a backbone, so the configuration can be checked before anything heavy
loads. Each type checks its own values when it is built; a bad one raises :class:`SettingsError` with the
field's name, which the config turns into the dotted key and the CLI into its flag.

>>> BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("features.13",), image_size=64).poolings
('avg',)
>>> EmbedOptions(batch_size=0)
Traceback (most recent call last):
...
headstart.errors.SettingsError: batch_size must be a positive integer or auto, got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from headstart.data.images import DEFAULT_MAX_PIXELS
from headstart.errors import SettingsError
__all__ = [
    "DEFAULT_CACHE_DIR", "POOLINGS", "PRECISIONS", "BackboneError", "BackboneSpec", "EmbedOptions", "FinetuneSettings",
    "RayOptions",
]  # fmt: skip

PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT_CACHE_DIR = ".headstart/cache"  # the per-image embedding cache of the CLI, the notebook API and the stages
POOLINGS = ("avg", "max", "avgmax", "gem", "cls", "clsavg")  # computed by headstart.features.pooling


class BackboneError(SettingsError):
    """An unknown backbone, node, pooling or precision; the message lists the valid ones."""


def _positive(value: object, key: str, auto: bool = False) -> None:
    if auto and value == "auto":
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SettingsError(f"must be a positive integer{' or auto' if auto else ''}, got {value!r}", key)


def _at_least(value: object, key: str, low: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > low if strict else value >= low)
    if not ok:
        raise SettingsError(f"must be a number {'>' if strict else '>='} {low:g}, got {value!r}", key)


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that decides what a backbone outputs.

    ``arch`` is a registered backbone name (``mobilenet_v2``, ``pixels``, or ``provider:model``). ``weights``
    is a weights name of ``arch`` (``IMAGENET1K_V1``), a checkpoint path, or ``None`` for random
    initialisation. ``layers`` are graph nodes (``"default"``: the pooled features before the classifier).
    ``pooling`` is one mode or a tuple of modes (one table per layer and mode, all from one pass).
    """

    arch: str
    weights: str | None = None
    layers: tuple[str, ...] = ("default",)
    pooling: str | tuple[str, ...] = "avg"
    image_size: int | None = None
    resize_size: int | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackboneError(f"'{self.precision}' is not one of {', '.join(PRECISIONS)}", "precision")
        if not self.layers:
            raise BackboneError("needs at least one layer (use 'default')", "layers")
        if isinstance(self.layers, str):
            raise BackboneError(f"must be a tuple of layer names, got the string {self.layers!r}", "layers")
        if not self.poolings:
            raise BackboneError(f"needs at least one mode of {', '.join(POOLINGS)}", "pooling")
        for mode in self.poolings:
            if mode not in POOLINGS:
                raise BackboneError(f"'{mode}' is not one of {', '.join(POOLINGS)}", "pooling")
        for key in ("image_size", "resize_size"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BackboneError(f"must be a positive integer (pixels) or none, got {value!r}", key)

    @property
    def poolings(self) -> tuple[str, ...]:
        return (self.pooling,) if isinstance(self.pooling, str) else tuple(self.pooling)


@dataclass(frozen=True)
class RayOptions:
    """Where ``engine: ray`` runs: ``address`` ``auto`` joins a running cluster, or starts a local one;
    ``actors`` ``auto`` is one model actor per GPU (one per CPU on CPU clusters)."""

    address: str = "auto"
    actors: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        _positive(self.actors, "actors", auto=True)


@dataclass(frozen=True)
class EmbedOptions:
    """How to run the embed engine. ``cache_dir=None``: a throw-away cache.

    Only ``decode`` changes the embeddings: ``jpeg-scaled`` (default) decodes JPEGs at the reduced scale the
    resize needs, ``full`` decodes every pixel first (bit-for-bit what headstart did before it had the setting).
    It enters the fingerprint only for datasets that hold a JPEG (see :func:`headstart.features.engine.embed`).
    """

    batch_size: int | Literal["auto"] = "auto"
    num_workers: int | Literal["auto"] = "auto"
    device: str = "auto"
    on_error: Literal["skip", "raise"] = "skip"
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    engine: Literal["local", "ray"] = "local"
    rows_per_shard: int | Literal["auto"] = "auto"
    ray: RayOptions = RayOptions()
    decode: Literal["jpeg-scaled", "full"] = "jpeg-scaled"

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise SettingsError(f"must be 'local' or 'ray', got {self.engine!r}", "engine")
        _positive(self.rows_per_shard, "rows_per_shard", auto=True)
        if self.on_error not in ("skip", "raise"):
            raise SettingsError(f"must be 'skip' or 'raise', got {self.on_error!r}", "on_error")
        if self.decode not in ("jpeg-scaled", "full"):
            raise SettingsError(f"must be 'jpeg-scaled' or 'full', got {self.decode!r}", "decode")
        _positive(self.batch_size, "batch_size", auto=True)
        if self.num_workers != "auto" and (
            not isinstance(self.num_workers, int) or isinstance(self.num_workers, bool) or self.num_workers < 0
        ):
            raise SettingsError(f"must be an integer >= 0 or auto, got {self.num_workers!r}", "num_workers")
        _positive(self.max_image_pixels, "max_image_pixels")

    def batch_size_for(self, device: object) -> int:
        """``auto``: 16 images on a CPU (small batches stay in the processor's caches), 64 on a GPU. Every batch
        is padded to this size, so it is part of the forward pass's arithmetic (:mod:`headstart.features.forward`)."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        return 64 if getattr(device, "type", "cpu") == "cuda" else 16


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune a backbone from a linear probe: which blocks train, the optimiser and its schedule."""

    unfreeze: int | Literal["all"] = 2
    optimizer: Literal["adamw", "sgd"] = "adamw"
    head_lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-4
    epochs: int = 10
    patience: int = 3
    batch_size: int = 64
    update_bn: bool = False
    augment: bool = True
    device: str = "auto"
    seed: int = 0
    num_workers: int | Literal["auto"] = "auto"
    # balanced: the cross-entropy weighs each class n / (n_classes x its train count); select_by: the val metric
    # of early stopping (auto: balanced accuracy when the largest train class has over 1.5x the smallest)
    class_weight: Literal["none", "balanced"] = "balanced"
    select_by: Literal["auto", "accuracy", "balanced_accuracy", "macro_f1", "log_loss"] = "auto"

    def __post_init__(self) -> None:
        if self.unfreeze != "all" and (
            not isinstance(self.unfreeze, int) or isinstance(self.unfreeze, bool) or self.unfreeze < 0
        ):
            raise SettingsError(f"must be a number of blocks >= 0 or all, got {self.unfreeze!r}", "unfreeze")
        if self.optimizer not in ("adamw", "sgd"):
            raise SettingsError(f"must be 'adamw' or 'sgd', got {self.optimizer!r}", "optimizer")
        _at_least(self.head_lr, "head_lr", 0.0, strict=True)
        _at_least(self.backbone_lr_factor, "backbone_lr_factor", 0.0)
        _at_least(self.weight_decay, "weight_decay", 0.0)
        for key in ("epochs", "patience", "batch_size"):
            _positive(getattr(self, key), key)
        if self.num_workers != "auto":
            _at_least(self.num_workers, "num_workers", 0)
