"""What a backbone provider is, and the four built-in ones.

A :class:`Provider` is a family of backbones named ``prefix:model`` (``timm:resnet18``): how to build one, how to
list its models, whether a model's weights are on this machine, and the library and pip extra it needs. The
registry (:mod:`headstart.features.registry`) serves every ``prefix:model`` name through it; ``headstart
backbones`` lists them. The built-in providers' code lives in :mod:`headstart.features.providers` and is named
here by ``"module:function"``, imported only when one of their models is built or listed.

>>> [p.prefix for p in BUILTIN_PROVIDERS]
['timm', 'hf', 'open_clip', 'sentence-transformers']
>>> BUILTIN_PROVIDERS[0].install
"pip install 'headstart[timm]'"
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_PROVIDERS", "Provider", "resolve"]


def resolve(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable as given, or ``"module:function"`` imported now (so registering one costs nothing)."""
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)
    return ref


@dataclass(frozen=True)
class Provider:
    """A family of backbones named ``prefix:model``.

    ``build(spec)`` makes one backbone (``spec.arch`` keeps the prefix), ``models()`` names the models without
    the prefix, ``weights(name)`` says whether the weights of ``prefix:model`` are on this machine (``None``:
    cannot tell); each is a callable or ``"module:function"``. ``requires`` is the library it imports, ``extra``
    the pip extra that installs it, ``trainable`` whether fine-tuning can train its models, ``examples`` the
    models ``headstart backbones`` shows.
    """

    prefix: str
    build: Callable[[Any], Any] | str
    models: Callable[[], list[str]] | str
    trainable: bool = False
    description: str = ""
    requires: str | None = None
    extra: str | None = None
    weights: Callable[[str], bool | None] | str | None = None
    examples: tuple[str, ...] = ()

    def load(self, spec: Any) -> Any:
        """Build the backbone of ``spec`` (a :class:`~headstart.features.spec.BackboneSpec`)."""
        return resolve(self.build)(spec)

    def list_models(self) -> list[str]:
        return list(resolve(self.models)())

    def weights_present(self, name: str) -> bool | None:
        return None if self.weights is None else resolve(self.weights)(name)

    def installed(self) -> bool:
        """Whether ``requires`` can be imported (it is looked up, not imported)."""
        try:
            return self.requires is None or importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False

    @property
    def install(self) -> str:
        """The command that installs the library, or ``""`` when it needs none of its own."""
        return f"pip install 'headstart[{self.extra}]'" if self.extra else ""


def _builtin(prefix: str, module: str, requires: str, extra: str, description: str, *examples: str) -> Provider:
    where = f"headstart.features.providers.{module}"
    return Provider(
        prefix,
        f"{where}:load",
        f"{where}:list_models",
        trainable=True,  # timm's classifier is replaced; the others' blocks are named by the provider
        description=description,
        requires=requires,
        extra=extra,
        weights=f"{where}:weights_present",
        examples=examples,
    )


BUILTIN_PROVIDERS = (
    _builtin(
        "timm", "timm", "timm", "timm", "timm's image models (ViT, DINOv2, ConvNeXt, ...), pretrained_cfg",
        "vit_small_patch14_dinov2.lvd142m", "resnet50.a1_in1k", "convnext_tiny.fb_in22k",
    ),
    _builtin(
        "hf", "hf", "transformers", "hf", "Hugging Face transformers: DINOv2, CLIP, SigLIP towers",
        "facebook/dinov2-small", "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224",
    ),
    _builtin(
        "open_clip", "open_clip", "open_clip", "open_clip", "open_clip image encoders (LAION...)",
        "ViT-B-32/laion2b_s34b_b79k",
    ),
    _builtin(
        "sentence-transformers", "sentence_transformers", "sentence_transformers", "text",
        "sentence-transformers text encoders (all-MiniLM-L6-v2 ships offline)", "all-MiniLM-L6-v2",
    ),
)  # fmt: skip
