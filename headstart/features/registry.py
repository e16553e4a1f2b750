"""The backbone registry: any torchvision classification model by name, plus headstart's own (``pixels``).

>>> "mobilenet_v2" in list_backbones()
True
>>> spec = BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("features.13",), image_size=64)
>>> backbone = load_backbone(spec)                                                   # doctest: +SKIP
>>> backbone.extractor(spec.layers, spec.poolings)                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headstart.features.weights import (
    ResolvedWeights,
    WeightsError,
    ensure_checkpoint,
    file_sha256,
    load_state_dict,
    resolve_weights,
)

__all__ = [
    "Backbone",
    "BackboneError",
    "BackboneSpec",
    "list_backbones",
    "load_backbone",
    "register_backbone",
]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
RANDOM_INIT_SEED = 0


class BackboneError(ValueError):
    """An unknown backbone, node, pooling or precision; the message lists the valid ones."""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that decides what a backbone outputs.

    ``weights`` is a weights name of ``arch`` (``IMAGENET1K_V1``), a checkpoint path, or ``None`` for random
    initialisation. ``layers`` are graph nodes (``"default"``: the pooled features before the classifier).
    ``pooling`` is one mode or a tuple of modes (one table per layer and mode, all from one pass).
    """

    arch: str
    weights: str | None = None
    layers: tuple[str, ...] = ("default",)
    pooling: str | tuple[str, ...] = "avg"
    image_size: int | None = None
    resize_size: int | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackboneError(f"precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        if not self.layers:
            raise BackboneError("a backbone needs at least one layer (use 'default')")
        from headstart.features.pooling import POOLINGS

        for mode in self.poolings:
            if mode not in POOLINGS:
                raise BackboneError(f"pooling '{mode}' is not one of {', '.join(POOLINGS)}")
        if self.image_size is not None and self.image_size < 1:
            raise BackboneError(f"image_size must be positive, got {self.image_size}")

    @property
    def poolings(self) -> tuple[str, ...]:
        return (self.pooling,) if isinstance(self.pooling, str) else tuple(self.pooling)


@dataclass
class Backbone:
    """A loaded backbone: the full model (eval mode), its preprocessing and where both came from."""

    spec: BackboneSpec
    model: Any
    transform: Callable[[Any], Any]
    preprocessing: dict[str, Any]
    weights: ResolvedWeights
    weights_sha256: str | None
    _nodes: list[str] | None = field(default=None, repr=False)

    def graph_nodes(self) -> list[str]:
        """The nodes one can truncate at (``torchvision.models.feature_extraction.get_graph_node_names``)."""
        if self._nodes is None:
            from headstart.features.truncate import graph_nodes

            self._nodes = graph_nodes(self.model)
        return self._nodes

    def default_node(self) -> str:
        from headstart.features.truncate import default_node

        return default_node(self.model, self.graph_nodes())

    def resolve_layers(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        from headstart.features.truncate import resolve_layers

        return resolve_layers(self.spec.arch, self.graph_nodes(), self.default_node(), layers)

    def extractor(self, layers: tuple[str, ...], poolings: tuple[str, ...]) -> Any:
        """An ``nn.Module`` mapping a batch to ``{(node, pooling): (N, D) tensor}`` in one forward pass."""
        from headstart.features.truncate import build_extractor

        return build_extractor(self.model, self.resolve_layers(layers), poolings)

    def declared_dim(self, node: str) -> int | None:
        """The width the architecture declares for ``node``: the classifier's input for the default node."""
        from torch import nn

        from headstart.features.truncate import classifier_name

        head = classifier_name(self.model)
        if node != self.default_node() or head is None:
            return None
        linears = [m for m in self.model.get_submodule(head).modules() if isinstance(m, nn.Linear)]
        return linears[0].in_features if linears else None

    def provenance(self) -> dict[str, Any]:
        """What went into the output, minus the node and pooling (see :mod:`headstart.features.fingerprint`)."""
        return {
            "backbone": self.spec.arch,
            "weights": self.weights.label,
            "weights_kind": self.weights.kind,
            "weights_sha256": self.weights_sha256,
            **({"init_seed": RANDOM_INIT_SEED} if self.weights.kind == "none" else {}),
            "image_size": self.spec.image_size,
            "resize_size": self.spec.resize_size,
            "precision": self.spec.precision,
            "preprocessing": self.preprocessing,
        }


_CUSTOM: dict[str, Callable[[BackboneSpec], Backbone]] = {}


def register_backbone(name: str) -> Callable[[Callable[[BackboneSpec], Backbone]], Callable[[BackboneSpec], Backbone]]:
    """Register a builder ``spec -> Backbone`` under ``name`` (like ``torchvision.models.register_model``)."""

    def wrap(builder: Callable[[BackboneSpec], Backbone]) -> Callable[[BackboneSpec], Backbone]:
        if name in _CUSTOM:
            raise BackboneError(f"backbone '{name}' is registered twice")
        _CUSTOM[name] = builder
        return builder

    return wrap


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def list_backbones() -> list[str]:
    """Every backbone name: headstart's own and torchvision's classification models."""
    _import_builtin_backbones()
    return sorted(_CUSTOM) + _torchvision_names()


def _import_builtin_backbones() -> None:
    import headstart.features.pixels  # noqa: F401 - registers `pixels`


def load_backbone(spec: BackboneSpec) -> Backbone:
    """Build the model of ``spec`` with its weights and preprocessing (on the CPU, eval mode)."""
    _import_builtin_backbones()
    if spec.arch in _CUSTOM:
        return _CUSTOM[spec.arch](spec)
    names = _torchvision_names()
    if spec.arch not in names:
        raise BackboneError(
            f"unknown backbone '{spec.arch}'; known: {', '.join(sorted(_CUSTOM))} and torchvision's {', '.join(names)}"
        )
    return _load_torchvision(spec)


def _load_torchvision(spec: BackboneSpec) -> Backbone:
    import torchvision.models as tvm

    from headstart.features.preprocess import build_transform

    resolved = resolve_weights(spec.arch, spec.weights)
    sha256 = None
    base_enum = resolved.enum
    if resolved.kind == "torchvision":
        path = ensure_checkpoint(resolved.enum)
        sha256 = _verified_sha256(path)
        model = tvm.get_model(spec.arch, weights=None, **_builder_kwargs(spec.arch, resolved.enum))
        model.load_state_dict(load_state_dict(path))
    elif resolved.kind == "checkpoint":
        assert resolved.path is not None
        sha256 = file_sha256(resolved.path)
        model, base_enum = _load_checkpoint(spec.arch, resolved.path)
    else:
        # random initialisation, seeded: the same `weights: none` backbone gives the same embeddings every run
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = tvm.get_model(spec.arch, weights=None)
    model.eval()
    transform, preprocessing = build_transform(spec.arch, base_enum, spec.image_size, spec.resize_size)
    return Backbone(
        spec=spec,
        model=model,
        transform=transform,
        preprocessing=preprocessing,
        weights=resolved,
        weights_sha256=sha256,
    )


def _verified_sha256(path: Any) -> str:
    digest = file_sha256(path)
    match = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsError(
            f"{path} is corrupt: its sha256 {digest[:12]}... does not start with {match.group(1)} "
            "as its name promises; delete it and run again"
        )
    return digest


def _builder_kwargs(arch: str, enum: Any) -> dict[str, Any]:
    """The constructor arguments torchvision itself passes when it builds ``arch`` with ``enum``."""
    kwargs: dict[str, Any] = {"num_classes": len(enum.meta["categories"])}
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    if arch.startswith("vit_") and "min_size" in enum.meta:
        kwargs["image_size"] = enum.meta["min_size"][0]
    return kwargs


def _load_checkpoint(arch: str, path: Any) -> tuple[Any, Any]:
    """Build ``arch`` from a headstart fine-tuned checkpoint or a plain state dict."""
    import torchvision.models as tvm

    from headstart.features.finetune.checkpoint import Checkpoint, is_checkpoint

    state = load_state_dict(path)
    base_enum = None
    if is_checkpoint(state):
        tuned = Checkpoint.from_dict(state, str(path))
        if tuned.arch != arch:
            raise WeightsError(
                f"checkpoint {path} is a fine-tuned '{tuned.arch}', but the backbone's arch is "
                f"'{arch}'; set `arch: {tuned.arch}`"
            )
        if tuned.base_weights:
            base_enum = resolve_weights(arch, tuned.base_weights).enum
        model = tvm.get_model(arch, weights=None, num_classes=tuned.num_classes)
        model.load_state_dict(tuned.state_dict)
        return model, base_enum
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = tvm.get_model(arch, weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"checkpoint {path} does not fit {arch}: {str(err)[:300]}") from err
    # a plain torchvision state dict: find its weights by file name, for the preprocessing
    for enum in tvm.get_model_weights(arch):
        if enum.url.rsplit("/", 1)[-1] == path.name:
            base_enum = enum
    return model, base_enum
