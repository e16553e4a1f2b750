"""The defaults of an embedding, defined once: ``headstart embed``, ``headstart.embed``, ``headstart.Encoder`` and
params.yaml's ``backbones:`` all build their :class:`~headstart.features.spec.BackboneSpec` with
:func:`backbone_spec`, so the same arguments give the same spec, fingerprint and table bytes.

``weights``
    :data:`PRETRAINED` (the default) means each backbone's standard pretrained weights, resolved here to the
    exact value that is recorded: torchvision models get :data:`TORCHVISION_WEIGHTS` (``IMAGENET1K_V1``, an exact
    name, never torchvision's moving ``DEFAULT``), ``provider:model`` names get ``pretrained`` (the provider's
    own weights for that model), backbones without weights (``pixels``) get ``None``. ``None`` (or the string
    ``none``) always means random initialisation, as ``torchvision.models.get_model(name, weights=None)`` does.
    Anything else (an exact weights name, a checkpoint path) is passed through as it is.
``image_size``, ``resize_size``
    ``None``: the weights' own crop and resize (224 and 256 for most ImageNet weights).
``layers``, ``pooling``, ``precision``
    ``("default",)`` (the pooled features before the classifier), ``"avg"``, ``"fp32"``.
``cache_dir``
    :data:`DEFAULT_CACHE_DIR` (``.headstart/cache``); ``None`` is a throw-away cache.

>>> backbone_spec("mobilenet_v2").weights, backbone_spec("timm:resnet18").weights, backbone_spec("pixels").weights
('IMAGENET1K_V1', 'pretrained', None)
>>> backbone_spec("mobilenet_v2", weights=None).weights is None
True
"""

from __future__ import annotations

from headstart.features.finetune.backbone import FinetunedBackbone
from headstart.features.registry import backbone_entry
from headstart.features.spec import DEFAULT_CACHE_DIR, BackboneSpec

__all__ = [
    "DEFAULT_BACKBONE", "DEFAULT_CACHE_DIR", "DEFAULT_LAYER", "DEFAULT_POOLING", "DEFAULT_PRECISION", "PRETRAINED",
    "TORCHVISION_WEIGHTS", "backbone_spec", "default_weights",
]  # fmt: skip

PRETRAINED = "pretrained"
TORCHVISION_WEIGHTS = "IMAGENET1K_V1"
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_LAYER = "default"
DEFAULT_POOLING = "avg"
DEFAULT_PRECISION = "fp32"
_RANDOM = ("none", "null", "random")


def default_weights(arch: str, weights: str | None = PRETRAINED) -> str | None:
    """The ``weights`` value recorded for ``arch``: :data:`PRETRAINED` resolved per provider, ``None`` for random
    initialisation (``None`` or ``"none"``), anything else as given."""
    if weights is None or str(weights).lower() in _RANDOM:
        return None
    if str(weights).lower() != PRETRAINED:
        return str(weights)
    if not backbone_entry(arch).has_weights:
        return None
    return PRETRAINED if ":" in arch else TORCHVISION_WEIGHTS


def backbone_spec(
    arch: str | FinetunedBackbone = DEFAULT_BACKBONE,
    *,
    weights: str | None = PRETRAINED,
    layers: str | tuple[str, ...] | list[str] = (DEFAULT_LAYER,),
    pooling: str | tuple[str, ...] | list[str] = DEFAULT_POOLING,
    image_size: int | None = None,
    resize_size: int | None = None,
    precision: str = DEFAULT_PRECISION,
) -> BackboneSpec:
    """The spec of ``arch`` with the defaults above; ``layers`` and ``pooling`` take one name or several.
    ``arch`` may be ``headstart.finetune``'s result: its base architecture with its checkpoint as the weights."""
    if isinstance(arch, FinetunedBackbone):
        arch, weights = arch.arch, arch.weights
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    poolings = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    return BackboneSpec(
        arch=arch,
        weights=default_weights(arch, weights),
        layers=layers,
        pooling=poolings[0] if len(poolings) == 1 else poolings,
        image_size=image_size,
        resize_size=resize_size,
        precision=precision,  # type: ignore[arg-type]
    )
