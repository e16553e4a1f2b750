"""The backbone registry: any torchvision classification model by name, headstart's own (``pixels``), and
``provider:model`` names (``timm:resnet18``) that a registered provider builds.

Each entry says whether fine-tuning can train it and whether it takes weights, so no caller checks a name.
A provider (:class:`~headstart.features.provider.Provider`: a prefix, how to build and list its models, the extra
that installs it) serves every ``prefix:model`` name; the built-in ones are
:data:`~headstart.features.provider.BUILTIN_PROVIDERS`, register more with :func:`register_provider` (torchvision
stays the unprefixed default).

>>> "mobilenet_v2" in list_backbones()
True
>>> spec = BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("features.13",), image_size=64)
>>> backbone = load_backbone(spec)                                                   # doctest: +SKIP
>>> backbone.extractor(spec.layers, spec.poolings)                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from headstart.features.provider import BUILTIN_PROVIDERS, Provider, resolve
from headstart.features.spec import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights

__all__ = [
    "Backbone",
    "BackboneEntry",
    "BackboneError",
    "BackboneSpec",
    "Provider",
    "backbone_entry",
    "fit_backbone",
    "list_backbones",
    "list_providers",
    "load_backbone",
    "register_backbone",
    "register_provider",
]

log = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0


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

    def example_input(self) -> Any:
        """One input batch for the width probe: a blank image through the preprocessing."""
        size = self.preprocessing["crop_size"]
        return self.transform(Image.new("RGB", (size, size)))[None]

    def feed(  # noqa: PLR0913
        self, items: list[Any], device: Any, batch_size: int, num_workers: int | str, max_pixels: int, reduce_to: Any
    ) -> tuple[Any, Any]:
        """Batches of decoded, preprocessed ``items`` and a function that says how they were decoded
        (see :func:`headstart.features.local_engine.feed`); ``reduce_to``: decode JPEGs reduced to about this size."""
        from headstart.features.local_engine import feed
        from headstart.features.reader import ImageDataset

        stages = self.preprocessing_stages()
        per_image = stages[0] if stages is not None else self.transform  # 8-bit tensors: see batch_stage()
        return feed(ImageDataset(items, per_image, max_pixels, reduce_to), device, batch_size, num_workers)

    def batch_stage(self) -> Callable[[Any], Any] | None:
        """What turns :meth:`feed`'s batches into the model's input, when its preprocessing is split in two: for
        torchvision's presets, ``feed`` decodes to 8-bit tensors and this converts and normalises each batch
        (the same values as ``transform``; :mod:`headstart.features.preprocess`). ``None``: ``feed``'s batches
        are the model's input."""
        stages = self.preprocessing_stages()
        return stages[1] if stages is not None else None

    def preprocessing_stages(self) -> Any:
        """``transform`` as ``(per image, per batch)`` halves (:func:`~headstart.features.preprocess.split_transform`),
        or ``None`` when it is not torchvision's classification preset."""
        from headstart.features.preprocess import split_transform

        return split_transform(self.transform)

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


Builder = Callable[[BackboneSpec], Backbone]


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: how to build it and what it is. ``build`` may be ``"module:function"``, imported
    on first use, so registering costs nothing. ``trainable``: fine-tuning can unfreeze its blocks;
    ``has_weights``: it takes a ``weights`` setting (the ``pixels`` baseline has none); ``fit``: ``(spec,
    prepared, directory) -> spec``, run before embedding, for a backbone fitted on the train split (``tfidf``)."""

    name: str
    build: Builder | str
    trainable: bool = True
    has_weights: bool = True
    description: str = ""
    fit: Callable[..., BackboneSpec] | str | None = None

    def builder(self) -> Builder:
        return resolve(self.build)


_ENTRIES: dict[str, BackboneEntry] = {}
_TORCHVISION = "headstart.features.torchvision_backbones:load_torchvision"
_PROVIDERS: dict[str, Provider] = {provider.prefix: provider for provider in BUILTIN_PROVIDERS}


def register_backbone(
    name: str,
    build: Builder | str | None = None,
    *,
    trainable: bool = True,
    has_weights: bool = True,
    description: str = "",
    fit: Callable[..., BackboneSpec] | str | None = None,
) -> Any:
    """Register a builder ``spec -> Backbone`` under ``name`` (like ``torchvision.models.register_model``).

    With ``build`` left out it is a decorator: ``@register_backbone("mine", trainable=False)``.
    """

    def wrap(builder: Builder | str) -> Builder | str:
        if name in _ENTRIES or ":" in name:
            raise BackboneError(f"backbone '{name}' is registered twice, or its name has a ':' (a provider prefix)")
        _ENTRIES[name] = BackboneEntry(name, builder, trainable, has_weights, description, fit)
        return builder

    return wrap if build is None else wrap(build)


def register_provider(
    prefix: str,
    load: Builder | str,
    list_models: Callable[[], list[str]] | str,
    *,
    trainable: bool = False,
    description: str = "",
    **details: Any,
) -> Provider:
    """Make every ``prefix:model`` name a backbone built by ``load`` (torchvision's names stay unprefixed);
    ``details`` are the other :class:`Provider` fields (``requires``, ``extra``, ``weights``, ``examples``).

    >>> register_provider("toy", load=lambda spec: ..., list_models=lambda: ["tiny"])  # doctest: +SKIP
    >>> load_backbone(BackboneSpec("toy:tiny"))                                         # doctest: +SKIP
    """
    if not prefix.replace("-", "_").isidentifier() or prefix in _PROVIDERS:
        raise BackboneError(f"provider prefix '{prefix}' is registered twice or is not a plain word")
    _PROVIDERS[prefix] = Provider(prefix, load, list_models, trainable, description, **details)
    return _PROVIDERS[prefix]


def list_providers() -> dict[str, Provider]:
    return dict(_PROVIDERS)


def _provider(arch: str) -> Provider:
    prefix = arch.partition(":")[0]
    if prefix not in _PROVIDERS:
        known = ", ".join(f"{p}:" for p in sorted(_PROVIDERS)) or "none registered"
        raise BackboneError(f"unknown backbone provider '{prefix}:' in '{arch}'; known providers: {known}")
    return _PROVIDERS[prefix]


def backbone_entry(arch: str) -> BackboneEntry:
    """What the registry knows of ``arch`` without building it (any unregistered name is torchvision's)."""
    if ":" in arch:
        provider = _provider(arch)
        return BackboneEntry(arch, provider.load, provider.trainable, True, provider.description)
    return _ENTRIES.get(arch) or BackboneEntry(arch, _TORCHVISION, True, True, "torchvision")


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm  # the registry itself is imported by runs that load no model

    return sorted(tvm.list_models(module=tvm))


def list_backbones(provider: str | None = None) -> list[str]:
    """Every backbone name: headstart's own and torchvision's; or, given a provider prefix, that provider's."""
    if provider is not None:
        found = _provider(f"{provider}:")
        return [f"{found.prefix}:{name}" for name in found.list_models()]
    return sorted(_ENTRIES) + _torchvision_names()


def load_backbone(spec: BackboneSpec) -> Backbone:
    """Build the model of ``spec`` with its weights and preprocessing (on the CPU, eval mode)."""
    if ":" in spec.arch:
        return _provider(spec.arch).load(spec)
    if spec.arch in _ENTRIES:
        return _ENTRIES[spec.arch].builder()(spec)
    names = _torchvision_names()
    if spec.arch not in names:
        raise BackboneError(
            f"unknown backbone '{spec.arch}'; known: {', '.join(sorted(_ENTRIES))}, "
            f"provider:model names ({', '.join(f'{p}:' for p in sorted(_PROVIDERS)) or 'no providers registered'}) "
            f"and torchvision's {', '.join(names)}"
        )
    return BackboneEntry(spec.arch, _TORCHVISION).builder()(spec)


register_backbone(
    "pixels",
    "headstart.features.pixels:build_pixels",
    trainable=False,
    has_weights=False,
    description="the raw image, resized and flattened (the honest baseline)",
)
register_backbone(
    "tfidf",
    "headstart.features.tfidf:build_tfidf",
    trainable=False,
    has_weights=False,
    description="TF-IDF of word and character n-grams fitted on the train split, SVD to 256-d (the text baseline)",
    fit="headstart.features.tfidf:fit_spec",
)


def fit_backbone(spec: BackboneSpec, prepared: Any, directory: Any) -> BackboneSpec:
    """``spec`` ready to embed ``prepared``: a backbone fitted on the train split (``tfidf``) is fitted now, its
    fit saved in ``directory`` and named by the spec's ``weights``; any other spec as it is."""
    entry = _ENTRIES.get(spec.arch)
    return resolve(entry.fit)(spec, prepared, directory) if entry is not None and entry.fit is not None else spec
